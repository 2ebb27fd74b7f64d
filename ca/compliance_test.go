package ca

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// TestComplianceFlagsWeakConfiguration: an RSA-1024 profile, an issuing
// key past its cryptoperiod, a software CA key, an online root, a broken
// audit chain and no backup each fail or warn with the right control;
// a sound configuration passes.
func TestComplianceFlagsWeakConfiguration(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(300*24*time.Hour)
	hsmProt, _ := json.Marshal(hsm.Protection{Backend: "pkcs11", OnToken: true, Sensitive: true, NeverExtractable: true, AlwaysSensitive: true})
	softProt, _ := json.Marshal(hsm.Protection{Backend: "softkms", Encrypted: true})

	weak := Compliance(ComplianceInput{
		Now: now, Warning: 30 * 24 * time.Hour, BackupMax: 7 * 24 * time.Hour,
		Profiles: map[string]Profile{"legacy": {KeyTypes: []string{"RSA-1024"}}},
		Keys: []inventory.Key{
			{ID: "root", Class: KeyClassRoot, URI: "softkms:name=root", Algorithm: "EC-P384", Status: inventory.KeyActive, RotationDue: &future, Protection: softProt},
			{ID: "issuing", Class: KeyClassIssuing, URI: "softkms:name=issuing", Algorithm: "EC-P256", Status: inventory.KeyActive, RotationDue: &past, Protection: softProt},
		},
		AuditErr: errors.New("inventory: audit chain broken: event 7"),
	})
	want := map[string]struct{ result, control string }{
		"algorithms":    {CheckFail, "NIST SP 800-57 Pt1 §5.6.1-5.6.2"},
		"cryptoperiods": {CheckFail, "NIST SP 800-57 Pt1 §5.3"},
		"hsm":           {CheckWarn, "NIST SP 800-57 Pt1 §6.2.2"},
		"root-offline":  {CheckWarn, "ISO/IEC 27002:2022 8.24"},
		"audit":         {CheckFail, "ISO/IEC 27002:2022 8.15"},
		"backup":        {CheckFail, "NIST SP 800-57 Pt1 §8.2.2.1"},
	}
	for _, c := range weak {
		w, ok := want[c.ID]
		if !ok {
			continue
		}
		hasControl := false
		for _, ctl := range c.Controls {
			hasControl = hasControl || ctl == w.control
		}
		if c.Result != w.result || !hasControl {
			t.Errorf("check %s = %s %v (evidence %v), want %s citing %q", c.ID, c.Result, c.Controls, c.Evidence, w.result, w.control)
		}
		delete(want, c.ID)
	}
	if len(want) > 0 {
		t.Errorf("checks missing from the report: %v", want)
	}

	good := Compliance(ComplianceInput{
		Now: now, Warning: 30 * 24 * time.Hour, BackupMax: 7 * 24 * time.Hour, LastBackup: now.Add(-time.Hour), AuditCount: 10,
		Profiles: map[string]Profile{"server": {KeyTypes: []string{"EC-P256", "RSA-3072"}}},
		Keys: []inventory.Key{
			{ID: "root", Class: KeyClassRoot, Algorithm: "EC-P384", Status: inventory.KeyActive, RotationDue: &future},
			{ID: "issuing", Class: KeyClassIssuing, URI: "pkcs11:object=issuing", Algorithm: "EC-P256", Status: inventory.KeyActive, RotationDue: &future, Protection: hsmProt},
		},
	})
	for _, c := range good {
		if c.Result != CheckPass {
			t.Errorf("sound configuration: check %s = %s (%v)", c.ID, c.Result, c.Evidence)
		}
	}
}
