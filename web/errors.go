package web

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError sends {"error": msg}. msg is for the user: never an internal
// cause. A 503 carries Retry-After (unless the caller set its own).
func writeError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", retryAfterOutage)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// retryAfterOutage is the Retry-After, in seconds, of every 503 the API
// and UI send while the database (or a dependency) is unreachable: the
// same value ACME and EST send.
const retryAfterOutage = "30"

// outageMessage is the user's text for a database outage: no driver
// error, address or host name.
const outageMessage = "the database is unavailable; try again shortly"

func isNotFound(err error) bool {
	return errors.Is(err, inventory.ErrNotFound) || errors.Is(err, ca.ErrNotFound)
}

// statusOf maps an error from ca or inventory to an HTTP status; the
// vocabulary is translated here, at the edge, and nowhere else.
func statusOf(err error) int {
	switch {
	case isNotFound(err):
		return http.StatusNotFound
	case errors.Is(err, inventory.ErrInvalid), errors.Is(err, ca.ErrBadRevocation):
		return http.StatusBadRequest
	case errors.Is(err, inventory.ErrConflict), errors.Is(err, inventory.ErrDuplicate), errors.Is(err, ca.ErrAlreadyRevoked):
		return http.StatusConflict
	case errors.Is(err, ca.ErrUnauthorized):
		return http.StatusForbidden
	case errors.Is(err, ca.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ca.ErrUnavailable), inventory.IsUnavailable(err):
		// An outage (connection refused or lost, database closed or
		// busy) is 503 with Retry-After, never 500: a retry succeeds
		// once the database is back, without a restart.
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// messageOf is the text shown for err: the ca error's user message, the
// inventory's validation message, or a generic one — never an internal
// cause.
func messageOf(err error) string {
	switch statusOf(err) {
	case http.StatusNotFound:
		return "not found"
	case http.StatusInternalServerError:
		return "internal error"
	}
	var ce *ca.Error
	if errors.As(err, &ce) {
		return ce.Msg
	}
	if inventory.IsUnavailable(err) {
		return outageMessage
	}
	// The inventory's messages name the argument at fault and never
	// carry internals (its documented contract).
	return err.Error()
}

// fail answers an API request with err's status and message; anything
// unrecognised is logged with its cause.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	switch status {
	case http.StatusInternalServerError:
		s.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case http.StatusServiceUnavailable:
		s.log.Warn("API request failed: unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, messageOf(err))
}

// decodeBody reads a JSON body into v, refusing unknown fields, trailing
// data and bodies over MaxBody.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		} else {
			writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		}
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed JSON body: trailing data")
		return false
	}
	return true
}
