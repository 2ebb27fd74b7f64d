// Command skipped prints which external-tool test groups the last test
// runs skipped (the log testtool keeps) and clears the log: run it after
// `go test ./...`, which shows nothing of a passing package's skips.
// With -keep the log is left in place.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/mica-pki/mica/internal/testtool"
)

func main() {
	keep := flag.Bool("keep", false, "do not clear the log")
	flag.Parse()
	path := testtool.SkipLog()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		fmt.Println("no test was skipped for a missing tool")
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	byGroup := map[string]map[string]int{} // group → package → tests
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "\t", 3)
		if len(parts) != 3 {
			continue
		}
		if byGroup[parts[0]] == nil {
			byGroup[parts[0]] = map[string]int{}
		}
		byGroup[parts[0]][parts[1]]++
	}
	f.Close()
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	if len(groups) == 0 {
		fmt.Println("no test was skipped for a missing tool")
	} else {
		fmt.Printf("SKIPPED tool groups (set %s=1 to make them failures):\n", testtool.EnvRequire)
	}
	for _, g := range groups {
		var pkgs []string
		n := 0
		for p, c := range byGroup[g] {
			pkgs = append(pkgs, fmt.Sprintf("%s (%d)", p, c))
			n += c
		}
		sort.Strings(pkgs)
		fmt.Printf("  %-12s %d test(s) in %s\n", g, n, strings.Join(pkgs, ", "))
	}
	if !*keep {
		_ = os.Remove(path)
	}
}
