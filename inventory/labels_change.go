package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// LabelChange is a partial label update: nil fields are left alone. Tags
// replaces the whole tag set; AddTags and RemoveTags edit it (applied
// after Tags).
type LabelChange struct {
	Owner       *string   `json:"owner,omitempty"`
	Team        *string   `json:"team,omitempty"`
	Environment *string   `json:"environment,omitempty"`
	Tags        *[]string `json:"tags,omitempty"`
	AddTags     []string  `json:"add_tags,omitempty"`
	RemoveTags  []string  `json:"remove_tags,omitempty"`
}

// Label limits: a text label is at most MaxLabelLength bytes of printable
// text; a certificate has at most MaxTags tags.
const (
	MaxLabelLength = 200
	MaxTags        = 32
)

// Empty reports whether c changes nothing.
func (c LabelChange) Empty() bool {
	return c.Owner == nil && c.Team == nil && c.Environment == nil && c.Tags == nil && len(c.AddTags) == 0 && len(c.RemoveTags) == 0
}

// Validate checks c without touching the database, so a bulk request can
// be refused as a whole before any certificate changes.
// Errors: ErrInvalid naming the field at fault.
func (c LabelChange) Validate() error {
	for field, v := range map[string]*string{"owner": c.Owner, "team": c.Team, "environment": c.Environment} {
		if v == nil {
			continue
		}
		if err := checkText(field, *v); err != nil {
			return err
		}
		if len(*v) > MaxLabelLength {
			return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, field, MaxLabelLength)
		}
		if strings.IndexFunc(*v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return fmt.Errorf("%w: %s contains control characters", ErrInvalid, field)
		}
	}
	var all []string
	if c.Tags != nil {
		all = append(all, *c.Tags...)
	}
	all = append(append(all, c.AddTags...), c.RemoveTags...)
	if len(all) > 3*MaxTags {
		return fmt.Errorf("%w: more than %d tags", ErrInvalid, MaxTags)
	}
	for _, t := range all {
		if t = strings.ToLower(strings.TrimSpace(t)); !tagPattern.MatchString(t) {
			return fmt.Errorf("%w: tag %q must be a short lower-case word (a-z, 0-9, . _ : / -)", ErrInvalid, truncateForError(t))
		}
	}
	return nil
}

// apply returns old changed by c, tags normalised, sorted and unique.
func (c LabelChange) apply(old Labels) Labels {
	l := Labels{Owner: old.Owner, Team: old.Team, Environment: old.Environment, Tags: slices.Clone(old.Tags)}
	if c.Owner != nil {
		l.Owner = *c.Owner
	}
	if c.Team != nil {
		l.Team = *c.Team
	}
	if c.Environment != nil {
		l.Environment = *c.Environment
	}
	if c.Tags != nil {
		l.Tags = slices.Clone(*c.Tags)
	}
	l.Tags = append(l.Tags, c.AddTags...)
	for i := range l.Tags {
		l.Tags[i] = strings.ToLower(strings.TrimSpace(l.Tags[i]))
	}
	for _, t := range c.RemoveTags {
		t = strings.ToLower(strings.TrimSpace(t))
		l.Tags = slices.DeleteFunc(l.Tags, func(x string) bool { return x == t })
	}
	slices.Sort(l.Tags)
	l.Tags = slices.Compact(l.Tags)
	if l.Tags == nil {
		l.Tags = []string{}
	}
	return l
}

// ChangeLabels applies c to one certificate atomically: it reads the
// current labels under the row lock, writes the result and appends ev
// (action cert.label) with details {"old": …, "new": …} in the same
// transaction. A change that changes nothing writes nothing and returns
// changed false.
//
// Errors: ErrNotFound; ErrInvalid (see Validate, and more than MaxTags
// tags after the change).
func (s *Store) ChangeLabels(ctx context.Context, issuerID, serial string, c LabelChange, ev Event) (after *Labels, changed bool, err error) {
	if err := c.Validate(); err != nil {
		return nil, false, err
	}
	serial, err = NormalizeSerial(serial)
	if err != nil {
		return nil, false, fmt.Errorf("%w: certificate %s/%s", ErrNotFound, issuerID, truncateForError(serial))
	}
	object := "cert:" + issuerID + "/" + serial
	defaultEvent(&ev, "cert.label", object)
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		cur, err := s.lockedCert(ctx, tx, issuerID, serial)
		if err != nil {
			return err
		}
		var old Labels
		if err := tx.GetContext(ctx, &old, s.q(`SELECT owner, team, environment FROM certificates WHERE id = ?`), cur.ID); err != nil {
			return fmt.Errorf("inventory: read labels of %s: %w", object, err)
		}
		if err := tx.SelectContext(ctx, &old.Tags, s.q(`SELECT tag FROM certificate_tags WHERE cert_id = ? ORDER BY tag`), cur.ID); err != nil {
			return fmt.Errorf("inventory: read tags of %s: %w", object, err)
		}
		if old.Tags == nil {
			old.Tags = []string{}
		}
		l := c.apply(old)
		after = &l
		if len(l.Tags) > MaxTags {
			return fmt.Errorf("%w: more than %d tags", ErrInvalid, MaxTags)
		}
		if l.Owner == old.Owner && l.Team == old.Team && l.Environment == old.Environment && slices.Equal(l.Tags, old.Tags) {
			return nil
		}
		changed = true
		if err := s.writeLabelsTx(ctx, tx, cur.ID, object, l, !slices.Equal(l.Tags, old.Tags)); err != nil {
			return err
		}
		if ev.Details == nil {
			type view struct {
				Owner       string   `json:"owner"`
				Team        string   `json:"team"`
				Environment string   `json:"environment"`
				Tags        []string `json:"tags"`
			}
			ev.Details, _ = json.Marshal(map[string]view{"old": {old.Owner, old.Team, old.Environment, old.Tags},
				"new": {l.Owner, l.Team, l.Environment, l.Tags}})
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
	if err != nil {
		return nil, false, err
	}
	return after, changed, nil
}
