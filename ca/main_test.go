package ca

import (
	"testing"

	"github.com/mica-pki/mica/internal/testtool"
)

// TestMain prints which external-tool groups this package skipped.
func TestMain(m *testing.M) { testtool.Main(m) }
