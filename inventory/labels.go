package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Labels are what the security team attaches to a certificate to know who
// answers for it, plus the key facts the weak-key filter uses.
type Labels struct {
	Owner       string   `json:"owner"`
	Team        string   `json:"team"`
	Environment string   `json:"environment"`
	Tags        []string `json:"tags"`
	KeyBits     int      `json:"key_bits"` // set from the DER when issued
	SigAlg      string   `json:"sig_alg"`  // e.g. ECDSA-SHA256
}

// tagPattern keeps tags short, URL- and CSV-safe words.
var tagPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._:/-]{0,62}$`)

func (s *Store) loadLabels(ctx context.Context, certs []Certificate) error {
	if len(certs) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(certs))
	ids := make([]int64, len(certs))
	for i := range certs {
		idx[certs[i].ID] = i
		ids[i] = certs[i].ID
		certs[i].Labels = &Labels{Tags: []string{}}
	}
	query, args, err := sqlx.In(`SELECT id, owner, team, environment, key_bits, sig_alg FROM certificates WHERE id IN (?)`, ids)
	if err != nil {
		return fmt.Errorf("inventory: build label query: %w", err)
	}
	var rows []struct {
		ID          int64  `db:"id"`
		Owner       string `db:"owner"`
		Team        string `db:"team"`
		Environment string `db:"environment"`
		KeyBits     int    `db:"key_bits"`
		SigAlg      string `db:"sig_alg"`
	}
	if err := s.db.SelectContext(ctx, &rows, s.q(query), args...); err != nil {
		return fmt.Errorf("inventory: read labels: %w", err)
	}
	for _, r := range rows {
		l := certs[idx[r.ID]].Labels
		l.Owner, l.Team, l.Environment, l.KeyBits, l.SigAlg = r.Owner, r.Team, r.Environment, r.KeyBits, r.SigAlg
	}
	query, args, err = sqlx.In(`SELECT cert_id, tag FROM certificate_tags WHERE cert_id IN (?) ORDER BY cert_id, tag`, ids)
	if err != nil {
		return fmt.Errorf("inventory: build tag query: %w", err)
	}
	var tags []struct {
		CertID int64  `db:"cert_id"`
		Tag    string `db:"tag"`
	}
	if err := s.db.SelectContext(ctx, &tags, s.q(query), args...); err != nil {
		return fmt.Errorf("inventory: read tags: %w", err)
	}
	for _, t := range tags {
		l := certs[idx[t.CertID]].Labels
		l.Tags = append(l.Tags, t.Tag)
	}
	return nil
}

// CertificateDetail is Certificate with Labels loaded.
// Errors: ErrNotFound.
func (s *Store) CertificateDetail(ctx context.Context, issuerID, serial string) (*Certificate, error) {
	c, err := s.Certificate(ctx, issuerID, serial)
	if err != nil {
		return nil, err
	}
	one := []Certificate{*c}
	if err := s.loadLabels(ctx, one); err != nil {
		return nil, err
	}
	return &one[0], nil
}

// SetLabels replaces a certificate's owner, team, environment and tags
// (KeyBits and SigAlg are ignored: they come from the DER) and appends ev
// (action cert.label by default) in the same transaction. Setting an
// owner is what "claims" a certificate.
//
// Errors: ErrNotFound; ErrInvalid for a tag that is not a short
// lower-case word or text that is not valid UTF-8.
func (s *Store) SetLabels(ctx context.Context, issuerID, serial string, l Labels, ev Event) error {
	serial, err := NormalizeSerial(serial)
	if err != nil {
		return fmt.Errorf("%w: certificate %s/%s", ErrNotFound, issuerID, truncateForError(serial))
	}
	for field, v := range map[string]string{"owner": l.Owner, "team": l.Team, "environment": l.Environment} {
		if err := checkText(field, v); err != nil {
			return err
		}
		if len(v) > 200 {
			return fmt.Errorf("%w: %s longer than 200 bytes", ErrInvalid, field)
		}
	}
	tags := make([]string, 0, len(l.Tags))
	for _, t := range l.Tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if !tagPattern.MatchString(t) {
			return fmt.Errorf("%w: tag %q must be a short lower-case word", ErrInvalid, truncateForError(t))
		}
		tags = append(tags, t)
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	object := "cert:" + issuerID + "/" + serial
	defaultEvent(&ev, "cert.label", object)
	if ev.Details == nil {
		ev.Details, _ = json.Marshal(map[string]any{"owner": l.Owner, "team": l.Team, "environment": l.Environment, "tags": tags})
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		cur, err := s.lockedCert(ctx, tx, issuerID, serial)
		if err != nil {
			return err
		}
		l.Tags = tags
		if err := s.writeLabelsTx(ctx, tx, cur.ID, object, l, true); err != nil {
			return err
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// writeLabelsTx stores l on the certificate row certID (object names it in
// errors), replacing its tag set too when withTags.
func (s *Store) writeLabelsTx(ctx context.Context, tx *sqlx.Tx, certID int64, object string, l Labels, withTags bool) error {
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE certificates SET owner = ?, team = ?, environment = ?, updated_at = ? WHERE id = ?`),
		l.Owner, l.Team, l.Environment, s.timeArg(s.now()), certID); err != nil {
		return fmt.Errorf("inventory: set labels of %s: %w", object, err)
	}
	if !withTags {
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM certificate_tags WHERE cert_id = ?`), certID); err != nil {
		return fmt.Errorf("inventory: clear tags of %s: %w", object, err)
	}
	for _, t := range l.Tags {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO certificate_tags (cert_id, tag) VALUES (?, ?)`), certID, t); err != nil {
			return fmt.Errorf("inventory: tag %s: %w", object, err)
		}
	}
	return nil
}
