package revocation

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
)

// defaultSpoolMemory is how many encoded entry bytes stay in memory before
// the spool moves to a temporary file: about 23,000 entries, so a typical
// issuer's CRL never touches disk while a million-entry one costs 1 MiB of
// heap plus a 64 KiB write buffer.
const defaultSpoolMemory = 1 << 20

// spool holds the encoded revokedCertificates while the source is drained.
// DER needs the SEQUENCE length before its contents and the signature needs
// the whole TBSCertList, so the entries have to be kept somewhere between
// the single pass over the source and the two reads (hash, then output);
// past the memory limit that somewhere is a temp file, not the heap.
type spool struct {
	dir   string
	limit int
	mem   []byte
	f     *os.File
	bw    *bufio.Writer
	size  int64
}

func (s *spool) Write(p []byte) (int, error) {
	s.size += int64(len(p))
	if s.f == nil {
		if need := len(s.mem) + len(p); need <= s.limit {
			if need > cap(s.mem) {
				// Grow by doubling up to the limit: append's 1.25x growth
				// for large slices would allocate ~5x the limit in total.
				grown := make([]byte, len(s.mem), min(max(2*cap(s.mem), need, 4096), s.limit))
				copy(grown, s.mem)
				s.mem = grown
			}
			s.mem = append(s.mem, p...)
			return len(p), nil
		}
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	return s.bw.Write(p)
}

func (s *spool) spill() error {
	f, err := os.CreateTemp(s.dir, "mica-crl-*.spool")
	if err != nil {
		return fmt.Errorf("revocation: CRL spool: %w", err)
	}
	s.f = f
	s.bw = bufio.NewWriterSize(f, 64<<10)
	if _, err := s.bw.Write(s.mem); err != nil {
		return fmt.Errorf("revocation: CRL spool: %w", err)
	}
	s.mem = nil
	return nil
}

// spilled reports whether the spool went to disk.
func (s *spool) spilled() bool { return s.f != nil }

// open returns a reader positioned at the first byte written. It may be
// called more than once; each call rewinds. Returning the *os.File itself
// (not a wrapper) lets io.Copy into another file use copy_file_range.
func (s *spool) open() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem), nil
	}
	if err := s.bw.Flush(); err != nil {
		return nil, fmt.Errorf("revocation: CRL spool: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("revocation: CRL spool: %w", err)
	}
	return s.f, nil
}

// close deletes the temp file; the spool is unusable afterwards.
func (s *spool) close() {
	if s.f != nil {
		name := s.f.Name()
		_ = s.f.Close()
		_ = os.Remove(name)
		s.f = nil
	}
	s.mem = nil
}
