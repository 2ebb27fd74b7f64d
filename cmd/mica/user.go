package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/web"
)

// runUserCreate: mica user create NAME --role R (--password-file F |
// --password-env VAR | --password-stdin). Passwords never come from argv.
func runUserCreate(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "user create", "NAME --role R (--password-file F | --password-env VAR | --password-stdin)")
	role := c.fs.String("role", "", "`ROLE`: admin, operator, viewer or auditor")
	pwFile := c.fs.String("password-file", "", "`FILE` holding the password")
	pwEnv := c.fs.String("password-env", "", "environment `VAR` holding the password")
	pwStdin := c.fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("user create takes one NAME")
	}
	if !inventory.ValidRole(*role) {
		return usageErrorf("--role must be admin, operator, viewer or auditor")
	}
	pw, err := readPassword(e, *pwFile, *pwEnv, *pwStdin)
	if err != nil {
		return usageErrorf("%v", err)
	}
	hash, err := web.HashPassword(pw)
	if err != nil {
		return usageErrorf("%v", err)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.CreateUser(ctx, inventory.User{Name: pos[0], Role: *role, PasswordHash: hash},
		inventory.Event{Actor: actor(), Protocol: "cli", Source: source(), Outcome: "ok"})
	switch {
	case errors.Is(err, inventory.ErrDuplicate), errors.Is(err, inventory.ErrInvalid):
		return usageErrorf("%v", err)
	case err != nil:
		return &cliError{code: exitUnavailable, msg: "cannot store the user", err: err}
	}
	fmt.Fprintf(e.stdout, "user %s created with role %s\n", pos[0], *role)
	return nil
}

func readPassword(e *env, file, envVar string, stdin bool) (string, error) {
	n := 0
	for _, set := range []bool{file != "", envVar != "", stdin} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "", errors.New("give exactly one of --password-file, --password-env, --password-stdin")
	}
	switch {
	case envVar != "":
		if v := e.getenv(envVar); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("environment variable %s is empty", envVar)
	case stdin:
		line, err := bufio.NewReader(io.LimitReader(os.Stdin, 4096)).ReadString('\n')
		if err != nil && line == "" {
			return "", fmt.Errorf("read password from stdin: %v", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read password file: %v", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
