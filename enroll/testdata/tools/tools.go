//go:build tools

// Package tools pins the EST client the acceptance tests drive.
package tools

import _ "github.com/globalsign/est/cmd/estclient"
