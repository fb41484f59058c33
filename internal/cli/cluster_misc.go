package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sopilot/sopilot/internal/provision/preflight"
)

const preflightLong = `Run every check that needs no change to anything, and say what to fix.

Without Terraform running: tools on PATH (terraform, --tools, --cloud-cli),
the Terraform version against what the configuration uses (provider-defined
functions need >= 1.8, required_version), module directories that are
missing (and whether they are disabled in the tfvars), and the filesystem
sizes in the tfvars against --quota. With --plan FILE, the saved plan is
checked too (filesystem shrink, planned sizes against --quota).

Exit 0 when nothing blocks, 3 when a check found an error.`

const preflightExample = `  sopilot cluster preflight --dir soperator/installations/demo --quota 5TiB

  # also check a saved plan
  sopilot cluster preflight --dir soperator/installations/demo --plan soperator/installations/demo/sopilot.tfplan

  # write stub modules for missing modules that are disabled in terraform.tfvars
  sopilot cluster preflight --dir soperator/installations/demo --write-stubs

  # start your own rules file from the built-in one
  sopilot cluster preflight --print-rules > rules.json`

func newClusterPreflightCommand(a *app, o *clusterOptions) *cobra.Command {
	var planFile string
	var writeStubs, printRules bool
	cmd := &cobra.Command{
		Use:     "preflight",
		Short:   "Check tools, Terraform version, modules, quota (and a saved plan)",
		Long:    preflightLong,
		Example: preflightExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printRules {
				if o.rules != "" {
					b, err := os.ReadFile(o.rules)
					if err != nil {
						return err
					}
					_, err = a.env.Stdout.Write(b)
					return err
				}
				_, err := a.env.Stdout.Write(preflight.DefaultRulesJSON())
				return err
			}
			ctx := cmd.Context()
			s, err := newSession(ctx, a, o)
			if err != nil {
				return err
			}
			rep := &PreflightReport{Kind: KindPreflight, Dir: o.dir, Terraform: s.terraformInfo()}
			fs, cfg, err := s.staticChecks(true)
			if err != nil {
				return err
			}
			if writeStubs {
				for _, mm := range preflight.MissingModules(cfg) {
					if mm.State != preflight.Disabled {
						continue
					}
					path, err := preflight.WriteStub(mm)
					if err != nil {
						return err
					}
					rep.StubsWritten = append(rep.StubsWritten, path)
				}
				if len(rep.StubsWritten) > 0 { // check again with the stubs
					if fs, _, err = s.staticChecks(true); err != nil {
						return err
					}
				}
			}
			rep.Findings = fs
			if planFile != "" {
				if err := s.requireTerraform(); err != nil {
					return err
				}
				plan, err := s.runner.ShowPlan(ctx, planFile)
				if err != nil {
					return err
				}
				rep.Findings = append(rep.Findings, preflight.Allow(preflight.Plan(plan, s.quota, s.rules, o.dir), o.allow)...)
				preflight.Sort(rep.Findings)
			}
			rep.Blocking = preflight.Blocking(rep.Findings)
			if rep.Findings == nil {
				rep.Findings = []preflight.Finding{}
			}
			if a.json() {
				if err := writeJSON(a.env.Stdout, a.root.output, rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.StubsWritten {
					fmt.Fprintf(a.env.Stdout, "wrote stub module %s\n", p)
				}
				printFindings(a.env.Stdout, rep.Findings, a.colorFor(a.env.Stdout))
				if !rep.Blocking {
					fmt.Fprintln(a.env.Stdout, "Preflight passed: nothing blocks a plan.")
				}
			}
			if rep.Blocking {
				return ErrRefused
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&planFile, "plan", "", "also check this saved plan (needs terraform)")
	cmd.Flags().BoolVar(&writeStubs, "write-stubs", false, "write stub modules for missing module directories that are disabled in the tfvars")
	cmd.Flags().BoolVar(&printRules, "print-rules", false, "print the rules in use (built-in, or --rules) and exit")
	return cmd
}

const outputLong = `Print the installation's Terraform outputs: all of them, or the one named.
A named string output is printed bare, for scripts:

  ssh root@"$(sopilot cluster output --dir soperator/installations/demo slurm_login_ip)"

Sensitive outputs are hidden in the listing (and null in JSON) unless named
or --show-sensitive is given.`

func newClusterOutputCommand(a *app, o *clusterOptions) *cobra.Command {
	var showSensitive bool
	cmd := &cobra.Command{
		Use:   "output [NAME]",
		Short: "Print Terraform outputs (e.g. slurm_login_ip)",
		Long:  outputLong,
		Example: `  sopilot cluster output --dir soperator/installations/demo
  sopilot cluster output --dir soperator/installations/demo slurm_login_ip
  sopilot cluster output --dir soperator/installations/demo -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := newSession(ctx, a, o)
			if err != nil {
				return err
			}
			if err := s.requireTerraform(); err != nil {
				return err
			}
			outs, err := s.runner.Outputs(ctx)
			if err != nil {
				return fmt.Errorf("%w (has the installation been applied? sopilot cluster apply --dir %s)", err, o.dir)
			}
			if len(args) == 1 {
				out, ok := outs[args[0]]
				if !ok {
					names := sortedKeys(outs)
					return fmt.Errorf("no output %q; the outputs are: %s", args[0], strings.Join(names, ", "))
				}
				v := OutputValue{Value: json.RawMessage(out.Value)}
				if a.json() {
					_, err := fmt.Fprintln(a.env.Stdout, string(out.Value))
					return err
				}
				_, err := fmt.Fprintln(a.env.Stdout, renderValue(v))
				return err
			}
			rep := &OutputsReport{Kind: KindOutputs, Dir: o.dir, Outputs: map[string]OutputValue{}}
			for name, out := range outs {
				v := OutputValue{Sensitive: out.Sensitive, Value: json.RawMessage(out.Value)}
				if out.Sensitive && !showSensitive {
					v.Value = json.RawMessage("null")
				}
				rep.Outputs[name] = v
			}
			if a.json() {
				return writeJSON(a.env.Stdout, a.root.output, rep)
			}
			for _, name := range sortedKeys(rep.Outputs) {
				v := rep.Outputs[name]
				if showSensitive {
					v.Sensitive = false
				}
				fmt.Fprintf(a.env.Stdout, "%s = %s\n", name, renderValue(v))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&showSensitive, "show-sensitive", false, "show sensitive outputs in the listing")
	return cmd
}

const importLong = `Bring resources that exist in the cloud under Terraform's management.

With ADDRESS ID, run terraform import for one resource (after terraform init).

With --from-error FILE (or - for stdin), read the output of a failed
terraform apply (pasted as it is, colours and boxes included), find the
"already exists" errors and print the terraform import command for each
resource: its address from the error, its ID from the error text when the
provider put it there, else with an <ID> placeholder and the command that
looks it up. With --run, the imports whose ID is known are run.`

const importExample = `  # one resource, as the seed did for its node groups
  sopilot cluster import --dir soperator/installations/demo \
    'module.k8s.nebius_mk8s_v1_node_group.controller' mk8snodegroup-e00xxxxx

  # from a failed apply's output
  terraform apply 2>&1 | tee apply.log
  sopilot cluster import --dir soperator/installations/demo --from-error apply.log
  sopilot cluster import --dir soperator/installations/demo --from-error apply.log --run`

func newClusterImportCommand(a *app, o *clusterOptions) *cobra.Command {
	var fromError string
	var run bool
	cmd := &cobra.Command{
		Use:     "import (ADDRESS ID | --from-error FILE)",
		Short:   "Import existing resources, or turn 'already exists' errors into imports",
		Long:    importLong,
		Example: importExample,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case fromError == "" && len(args) != 2:
				return fmt.Errorf("%w: want ADDRESS ID, or --from-error FILE", ErrUsage)
			case fromError != "" && len(args) != 0:
				return fmt.Errorf("%w: --from-error takes no ADDRESS ID", ErrUsage)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := newSession(ctx, a, o)
			if err != nil {
				return err
			}
			rep := &ImportReport{Kind: KindImport, Dir: o.dir, Commands: []preflight.ImportCommand{}}
			var todo []preflight.ImportCommand
			if fromError != "" {
				text, err := readInput(fromError, a.env.Stdin)
				if err != nil {
					return err
				}
				rep.Commands = append(rep.Commands, preflight.ImportCommands(preflight.ParseDiagnostics(text), s.rules)...)
				if run {
					for _, c := range rep.Commands {
						if c.ID != "" {
							todo = append(todo, c)
						}
					}
				}
			} else {
				todo = []preflight.ImportCommand{{Address: args[0], Type: preflight.ResourceType(args[0]), ID: args[1]}}
			}
			var runErr error
			if len(todo) > 0 {
				if err := s.requireTerraform(); err != nil {
					return err
				}
				defer s.notifyInterrupt(ctx)()
				if err := s.runner.Init(ctx, nil); err != nil {
					return err
				}
				for _, c := range todo {
					if runErr = s.runner.Import(ctx, c.Address, c.ID, s.varFiles); runErr != nil {
						break
					}
					rep.Imported = append(rep.Imported, c.Address)
				}
			}
			if a.json() {
				if err := writeJSON(a.env.Stdout, a.root.output, rep); err != nil {
					return err
				}
			} else {
				if fromError != "" && len(rep.Commands) == 0 {
					fmt.Fprintln(a.env.Stdout, "No \"already exists\" errors with a resource address found.")
				}
				printFindings(a.env.Stdout, preflight.ImportFinding(rep.Commands), a.colorFor(a.env.Stdout))
				for _, addr := range rep.Imported {
					fmt.Fprintf(a.env.Stdout, "imported %s\n", addr)
				}
			}
			if runErr != nil {
				return runErr
			}
			if run && len(rep.Imported) < len(rep.Commands) {
				return errors.New("some resources were not imported: their IDs are not in the error text; look them up and import them with ADDRESS ID")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&fromError, "from-error", "", "file with a failed apply's output ('-' for stdin)")
	cmd.Flags().BoolVar(&run, "run", false, "with --from-error: run the imports whose ID is known")
	return cmd
}

func readInput(path string, stdin io.Reader) (string, error) {
	if path == "-" {
		b, err := io.ReadAll(stdin)
		return string(b), err
	}
	b, err := os.ReadFile(path)
	return string(b), err
}
