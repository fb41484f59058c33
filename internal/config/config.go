// Package config gives every sopilot binary the same configuration rules:
// each flag is mirrored by an environment variable (SOPILOT_ plus the flag's
// name in upper snake case), a flag given on the command line wins over the
// variable, and the variable wins over the default. --help lists both.
package config

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// EnvName is the environment variable mirroring a flag: "grpc-addr" →
// "SOPILOT_GRPC_ADDR".
func EnvName(flagName string) string {
	return "SOPILOT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then fills every flag that was not given on
// the command line from its environment variable. A bad value in a variable
// is an error naming the variable.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (all settings are --flags; see --help)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := EnvName(f.Name)
		if v := getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// Usage returns a usage function that prints summary, then every flag with
// its environment variable and default.
func Usage(fs *flag.FlagSet, w io.Writer, summary string) func() {
	return func() {
		fmt.Fprintln(w, strings.TrimSpace(summary))
		fmt.Fprintln(w, "\nFlags (each can also be set by the environment variable shown; a flag wins):")
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s  [%s]%s\n      %s\n", f.Name, EnvName(f.Name), def, f.Usage)
		})
	}
}
