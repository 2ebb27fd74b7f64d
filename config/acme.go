package config

import "github.com/mica-pki/mica/acme"

// ACME configures the ACME front end; docs/acme.md describes every field.
// An empty section serves the "default" directory (CA profile "server",
// no EAB) and validates on the standard ports with the system resolver.
type ACME struct {
	// Profiles are the ACME directories, /acme/{name}/directory; empty
	// means acme.DefaultProfiles().
	Profiles map[string]acme.Profile `yaml:"profiles,omitempty"`
	// BaseURL is the https://host[:port] clients reach the server at, when
	// a load balancer stands in front; empty means the request's Host.
	BaseURL    string                 `yaml:"base_url,omitempty"`
	Validation acme.ValidationOptions `yaml:"validation,omitempty"`
	Limits     acme.Limits            `yaml:"limits,omitempty"`
	// TermsOfService is the URL of the terms ACME clients agree to,
	// shown as meta.termsOfService in every directory; empty: none.
	TermsOfService string `yaml:"terms_of_service,omitempty"`
}
