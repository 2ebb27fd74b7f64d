package enroll

// ParseCertsOnly exposes parseCertsOnly to the external tests.
var ParseCertsOnly = parseCertsOnly
