package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestCLIDocListsEveryCommand: docs/cli.md names every command `mica
// help` lists, and no command that does not exist, so the page cannot
// fall behind the binary again.
func TestCLIDocListsEveryCommand(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	c := &tca{t: t, dir: t.TempDir()}
	help := c.must("help").stdout
	var names []string
	inList := false
	for _, l := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(l, "Commands:"):
			inList = true
		case inList && strings.HasPrefix(l, "  "):
			f := strings.Fields(l)
			// A command is one to three lower-case words before the summary.
			n := 0
			for n < len(f) && n < 3 && regexp.MustCompile(`^[a-z][a-z-]*$`).MatchString(f[n]) {
				n++
			}
			names = append(names, commandPrefix(f[:n]))
		case inList:
			inList = false // the list ends at the first line not indented
		}
	}
	if len(names) < 30 {
		t.Fatalf("parsed %d commands from mica help:\n%s", len(names), help)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`mica ([a-z][a-z -]*)").FindAllStringSubmatch(string(doc), -1) {
		documented[strings.TrimSpace(m[1])] = true
	}
	for _, n := range names {
		found := false
		for d := range documented {
			if d == n || strings.HasPrefix(d, n+" ") {
				found = true
			}
		}
		if !found && n != "help" {
			t.Errorf("docs/cli.md does not document `mica %s`", n)
		}
	}
	for d := range documented {
		if _, _, ok := lookup(strings.Fields(d)); !ok && d != "help" {
			t.Errorf("docs/cli.md documents `mica %s`, which is no command", d)
		}
	}
}

// commandPrefix is the command name among the help line's first words:
// the longest one lookup knows.
func commandPrefix(words []string) string {
	if len(words) > 0 && words[0] == "help" {
		return "help"
	}
	for n := len(words); n > 0; n-- {
		if _, rest, ok := lookup(words[:n]); ok && len(rest) == 0 {
			return strings.Join(words[:n], " ")
		}
	}
	return strings.Join(words, " ")
}
