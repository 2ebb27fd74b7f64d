// Package config reads and writes mica.yaml, the one configuration file of a
// MICA installation.
//
// # Where it lives
//
// The file sits in the data directory (`mica --data DIR` reads DIR/mica.yaml)
// or anywhere else (`mica --config FILE`), in which case its data_dir field,
// or else the file's own directory, names the data directory. Relative paths
// in the file (the SQLite database, a softkms key directory, secret files)
// resolve against the data directory, so a data directory can be moved or
// restored from backup as a whole. [Write] turns paths under the data
// directory back into relative ones for the same reason.
//
// # What it must never hold
//
// A PIN or passphrase. Secrets reach MICA from a file (keys.secret_file) or
// an environment variable (keys.secret_env), loaded by [Keys.Secret] into an
// [hsm.Secret] that never formats its value. [Load] refuses a file that has
// a pin, passphrase or password key anywhere, or a pkcs11 URI with a
// pin-value, with an error that says what to use instead. Because no secret
// is ever part of [Config], [Config.Redacted] can dump it freely; it still
// masks a password embedded in a PostgreSQL DSN.
//
// # Defaults
//
// [Default] and [Load] fill every field a user may omit: SQLite in the data
// directory, softkms keys in DIR/keys, HTTPS on 127.0.0.1:8443, plain HTTP on
// 127.0.0.1:8080, relying-party URLs derived from the HTTP listener, and the
// built-in issuance profiles from [ca.DefaultProfiles] when the file has no
// profiles section. URLs left empty stay empty in the struct and are derived
// on use by [Config.EffectiveURLs], so moving the HTTP listener moves them.
package config
