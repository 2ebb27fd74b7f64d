package acme

// MigrationWindow exposes migrationWindow to the external tests.
var MigrationWindow = migrationWindow
