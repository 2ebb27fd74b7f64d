package discover

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrPathNotAllowed: a file discovery path is outside the configured
// roots, inside a denied directory, or not a regular file or directory.
var ErrPathNotAllowed = errors.New("path not allowed for file discovery")

// alwaysDenied are never read, whatever the roots say: kernel and device
// files are not certificates, and reading some of them blocks or leaks
// (/proc/self/environ holds the server's environment).
var alwaysDenied = []string{"/proc", "/sys", "/dev", "/run"}

// Fence says which paths file discovery may read: regular files under
// one of its roots, never under a denied directory (the data directory),
// never through a symbolic link that leads out of the roots. The zero
// value and nil allow nothing: file discovery is off until roots are
// configured. Check vets a job before it is queued; Open is the check
// again at read time, on the descriptor, so a path swapped for a FIFO or
// a link between the two is still refused.
type Fence struct {
	roots []string // absolute, cleaned, symlinks resolved
	deny  []string
}

// NewFence builds a fence from roots and the directories it must never
// enter (deny, e.g. the data directory). Roots must be absolute; a root
// that does not exist is an error, so a typo does not silently disable.
func NewFence(roots []string, deny ...string) (*Fence, error) {
	f := &Fence{}
	for _, d := range append(append([]string{}, alwaysDenied...), deny...) {
		if d == "" {
			continue
		}
		f.deny = append(f.deny, filepath.Clean(d))
		if r, err := filepath.EvalSymlinks(d); err == nil && r != filepath.Clean(d) {
			f.deny = append(f.deny, r)
		}
	}
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("discover: file root %q is not an absolute path", r)
		}
		real, err := filepath.EvalSymlinks(filepath.Clean(r))
		if err != nil {
			return nil, fmt.Errorf("discover: file root %q: %w", r, err)
		}
		f.roots = append(f.roots, real)
	}
	return f, nil
}

// Enabled reports whether any root is configured.
func (f *Fence) Enabled() bool { return f != nil && len(f.roots) > 0 }

// Roots lists the resolved roots, for messages.
func (f *Fence) Roots() string {
	if !f.Enabled() {
		return "(none: file discovery is disabled; set discovery.file_roots)"
	}
	return strings.Join(f.roots, ", ")
}

func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// lexical checks p, absolute and clean, against roots and deny lists.
func (f *Fence) lexical(p string) error {
	for _, d := range f.deny {
		if within(p, d) {
			return fmt.Errorf("%s: %w (a system or MICA data directory)", p, ErrPathNotAllowed)
		}
	}
	for _, r := range f.roots {
		if within(p, r) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w (outside discovery.file_roots: %s)", p, ErrPathNotAllowed, f.Roots())
}

// Resolve checks path and returns it absolute with symlinks resolved.
// The path is checked as given first — nothing outside the roots is even
// looked at — then resolved and checked again, so a link inside a root
// that points out of it is refused. It must name a regular file or a
// directory. Errors wrap ErrPathNotAllowed or the fs error (missing).
func (f *Fence) Resolve(path string) (string, error) {
	if !f.Enabled() {
		return "", fmt.Errorf("%s: %w: file discovery is disabled (set discovery.file_roots)", path, ErrPathNotAllowed)
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%s: %w: give an absolute path", path, ErrPathNotAllowed)
	}
	p := filepath.Clean(path)
	if err := f.lexical(p); err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if err := f.lexical(real); err != nil {
		return "", err
	}
	info, err := os.Lstat(real)
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() && !info.IsDir() {
		return "", fmt.Errorf("%s: %w: not a regular file or directory (%s)", path, ErrPathNotAllowed, info.Mode().Type())
	}
	return real, nil
}

// Check vets every path of a files job; it fits Runner.Check.
func (f *Fence) Check(paths []string) error {
	for _, p := range paths {
		if _, err := f.Resolve(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: %w: no such file or directory", p, ErrPathNotAllowed)
			}
			if !errors.Is(err, ErrPathNotAllowed) {
				return fmt.Errorf("%s: %w: cannot be read", p, ErrPathNotAllowed)
			}
			return err
		}
	}
	return nil
}

// openRegular opens p without following a final symbolic link and
// without blocking (a FIFO would otherwise wait for a writer), then
// checks on the descriptor that it is a regular file: what was checked
// is what is read.
func openRegular(p string) (*os.File, error) {
	fh, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	info, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%w: not a regular file (%s)", ErrPathNotAllowed, info.Mode().Type())
	}
	return fh, nil
}
