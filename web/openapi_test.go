package web_test

import (
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/mica-pki/mica/web"
)

// TestOpenAPICoversRoutes keeps docs/openapi.yaml in step with the router:
// every /api/v1 route and method must be documented.
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	web.New(nil, nil, slog.New(slog.DiscardHandler)).Mount(r, chi.NewRouter())
	n := 0
	err = chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path, ok := strings.CutPrefix(route, "/api/v1")
		if !ok || path == "/*" {
			return nil
		}
		n++
		section := sectionOf(string(doc), "  "+path+":")
		if section == "" {
			t.Errorf("%s %s is not in docs/openapi.yaml", method, route)
		} else if !strings.Contains(section, "    "+strings.ToLower(method)+":") {
			t.Errorf("%s %s: path documented without method %s", method, route, strings.ToLower(method))
		}
		return nil
	})
	if err != nil || n < 8 {
		t.Fatalf("walked %d API routes, err %v", n, err)
	}
}

// sectionOf returns the lines under a two-space-indented path key up to
// the next path key.
func sectionOf(doc, key string) string {
	i := strings.Index(doc, "\n"+key+"\n")
	if i < 0 {
		return ""
	}
	rest := doc[i+len(key)+2:]
	var b strings.Builder
	for _, l := range strings.Split(rest, "\n") {
		if strings.HasPrefix(l, "  /") || (l != "" && !strings.HasPrefix(l, " ")) {
			break
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
