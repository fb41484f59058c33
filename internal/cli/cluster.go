package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/spf13/cobra"

	"github.com/sopilot/sopilot/internal/provision"
	"github.com/sopilot/sopilot/internal/provision/preflight"
)

const clusterLong = `Provision the Soperator cluster with Terraform, the way the seed tutorial did
by hand, with the checks that would have stopped each of its failures first.

--dir is the installation directory: soperator/installations/<name> of a
checkout of github.com/nebius/nebius-solution-library, holding main.tf and
terraform.tfvars. The usual cycle:

  sopilot cluster preflight --dir soperator/installations/demo --quota 5TiB
  sopilot cluster plan      --dir soperator/installations/demo --quota 5TiB
  sopilot cluster apply     --dir soperator/installations/demo --plan soperator/installations/demo/sopilot.tfplan
  sopilot cluster output    --dir soperator/installations/demo slurm_login_ip
  sopilot cluster destroy   --dir soperator/installations/demo

What the checks catch (numbers are the seed tutorial's problems):
  1-3  terraform, the nebius CLI, jq, yq, md5sum or kubectl missing: all reported at once,
       with how to install each
  4    a Terraform too old for the configuration (provider::units::from_gib
       needs >= 1.8): the file and line, before Terraform fails on it
  5    filesystem sizes in the tfvars over --quota, with the numbers
  6    a plan that shrinks a filesystem: refused, with the recovery commands
  7    module directories missing on disk, and whether they are disabled
       (--write-stubs writes stubs for disabled ones)
  8    "already exists" errors from apply: turned into terraform import
       commands (sopilot cluster import --from-error)

Rules (which resources are filesystems, which tfvars keys size them, which
features need which Terraform) are data: see --rules and
'sopilot cluster preflight --print-rules'.`

// clusterOptions are the flags of every cluster command.
type clusterOptions struct {
	dir          string
	varFiles     []string
	terraform    string
	rules        string
	quota        string
	diskQuotas   []string
	tools        []string
	cloudCLI     string
	allow        []string
	initAttempts int
}

func newClusterCommand(a *app) *cobra.Command {
	o := &clusterOptions{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Provision the cluster with Terraform, with preflight checks",
		Long:  clusterLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.dir, "dir", ".", "installation directory (soperator/installations/<name>)")
	pf.StringSliceVar(&o.varFiles, "var-file", nil, "extra variable file, after terraform.tfvars and *.auto.tfvars (repeatable; relative to the current directory, else to --dir)")
	pf.StringVar(&o.terraform, "terraform", "", "terraform binary (default: terraform on PATH)")
	pf.StringVar(&o.rules, "rules", "", "preflight rules file replacing the built-in Nebius rules (see preflight --print-rules)")
	pf.StringVar(&o.quota, "quota", "", "filesystem size quota to check the tfvars and the plan against, e.g. 5TiB (binary units: KiB, GiB, TiB; decimal: GB, TB)")
	pf.StringSliceVar(&o.diskQuotas, "disk-quota", nil, "disk size quota per disk type, NAME=SIZE, e.g. network-ssd=20TiB or compute.disk.size.network-ssd-io-m3=20TiB (repeatable): boot, node-local and NFS disks are checked against it")
	pf.StringSliceVar(&o.tools, "tools", []string{"terraform", "kubectl", "jq", "yq", "md5sum"}, "tools that must be on PATH (the recipe's README and .envrc need jq and coreutils' md5sum; its modules run yq and kubectl)")
	pf.StringVar(&o.cloudCLI, "cloud-cli", "nebius", "the cloud's CLI, checked like --tools (empty: none)")
	pf.StringSliceVar(&o.allow, "allow", nil, "turn errors of these checks into warnings: tools, terraform-version, quota, disk-quota, shrink, modules, variables")
	pf.IntVar(&o.initAttempts, "init-attempts", 3, "terraform init attempts when init fails on network or registry errors")

	cmd.AddCommand(
		newClusterPreflightCommand(a, o),
		newClusterPlanCommand(a, o),
		newClusterApplyCommand(a, o),
		newClusterDestroyCommand(a, o),
		newClusterOutputCommand(a, o),
		newClusterImportCommand(a, o),
	)
	return cmd
}

// session is one cluster command run: resolved options, rules, and the
// terraform binary if there is one.
type session struct {
	a        *app
	o        *clusterOptions
	rules    *preflight.Rules
	quota    preflight.Bytes
	disks    map[string]preflight.Bytes
	varFiles []string
	tfPath   string // "" when terraform was not found
	tfErr    error
	runner   *provision.Runner
	version  *version.Version
}

func newSession(ctx context.Context, a *app, o *clusterOptions) (*session, error) {
	s := &session{a: a, o: o}
	st, err := os.Stat(o.dir)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: --dir %s is not a directory", ErrUsage, o.dir)
	}
	if o.initAttempts < 1 {
		return nil, fmt.Errorf("%w: --init-attempts must be at least 1", ErrUsage)
	}
	if o.quota != "" {
		if s.quota, err = preflight.ParseSize(o.quota); err != nil {
			return nil, fmt.Errorf("%w: --quota: %w", ErrUsage, err)
		}
	}
	for _, c := range o.allow {
		if !slices.Contains([]string{preflight.CheckTools, preflight.CheckTerraformVersion, preflight.CheckQuota, preflight.CheckShrink, preflight.CheckModules, preflight.CheckVariables, preflight.CheckDiskQuota}, c) {
			return nil, fmt.Errorf("%w: --allow %q: not a check name", ErrUsage, c)
		}
	}
	for _, f := range o.varFiles {
		s.varFiles = append(s.varFiles, resolveVarFile(f, o.dir))
	}
	if s.rules, err = preflight.LoadRules(o.rules); err != nil {
		return nil, err
	}
	if s.disks, err = preflight.ParseDiskQuotas(o.diskQuotas, s.rules); err != nil {
		return nil, fmt.Errorf("%w: --disk-quota: %w", ErrUsage, err)
	}
	s.tfPath, s.tfErr = provision.Locate(o.terraform, a.env.LookPath)
	if s.tfErr == nil {
		s.runner, err = provision.New(provision.Options{
			Dir:          o.dir,
			Terraform:    s.tfPath,
			Env:          a.env.TerraformEnv,
			Logger:       a.log,
			InitAttempts: o.initAttempts,
		})
		if err != nil {
			return nil, err
		}
		if s.version, err = s.runner.Version(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// resolveVarFile: relative to the current directory if it exists there,
// else relative to the installation directory (terraform -chdir habits).
func resolveVarFile(f, dir string) string {
	if filepath.IsAbs(f) {
		return f
	}
	if _, err := os.Stat(f); err == nil {
		abs, _ := filepath.Abs(f)
		return abs
	}
	abs, _ := filepath.Abs(filepath.Join(dir, f))
	return abs
}

func (s *session) terraformInfo() *TerraformInfo {
	if s.tfPath == "" {
		return nil
	}
	ti := &TerraformInfo{Path: s.tfPath}
	if s.version != nil {
		ti.Version = s.version.String()
	}
	return ti
}

// lookPath is the tools check's view of PATH: "terraform" is whatever
// --terraform or PATH gave.
func (s *session) lookPath(name string) (string, error) {
	if name == "terraform" {
		return s.tfPath, s.tfErr
	}
	return s.a.env.LookPath(name)
}

// staticChecks runs the checks that need no Terraform run; withQuota adds
// the tfvars quota check. terraform is always required.
func (s *session) staticChecks(withQuota bool) ([]preflight.Finding, *preflight.Config, error) {
	cfg, err := preflight.LoadConfig(s.o.dir, s.varFiles)
	if err != nil {
		return nil, nil, err
	}
	tools := append([]string{"terraform"}, s.o.tools...)
	if s.o.cloudCLI != "" {
		tools = append(tools, s.o.cloudCLI)
	}
	fs := preflight.Static(preflight.StaticInput{
		Config: cfg, Rules: s.rules, LookPath: s.lookPath, Tools: tools, Installed: s.version, Quota: s.quota, DiskQuotas: s.disks,
	})
	if !withQuota {
		fs = slices.DeleteFunc(fs, func(f preflight.Finding) bool {
			return f.Check == preflight.CheckQuota || f.Check == preflight.CheckDiskQuota
		})
	}
	return preflight.Allow(fs, s.o.allow), cfg, nil
}

// progress returns a Progress printing to stderr.
func (s *session) progress(showPlanned bool) *provision.Progress {
	return provision.NewProgress(s.a.env.Stderr, provision.ProgressOptions{
		Color: s.a.colorFor(s.a.env.Stderr), ShowPlanned: showPlanned,
	})
}

// notifyInterrupt prints, once, what happens after Ctrl-C while Terraform
// runs. The returned function stops the notice.
func (s *session) notifyInterrupt(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		fmt.Fprintln(s.a.env.Stderr, "\nInterrupt received: asking Terraform to stop gracefully; it finishes the calls in flight and saves its state (this can take a while)...")
	})
}

// confirm asks on stderr and reads "yes" from stdin.
func (s *session) confirm(question string) error {
	fmt.Fprintf(s.a.env.Stderr, "%s\n  Only 'yes' will be accepted: ", question)
	line, err := bufio.NewReader(s.a.env.Stdin).ReadString('\n')
	if !isCharDevice(s.a.env.Stdin) {
		fmt.Fprintln(s.a.env.Stderr) // a terminal echoed the user's newline; a pipe did not
	}
	if strings.TrimSpace(line) == "yes" {
		return nil
	}
	if err != nil && errors.Is(err, io.EOF) && strings.TrimSpace(line) == "" {
		return fmt.Errorf("%w: no answer on stdin (pass --yes in scripts)", ErrNotConfirmed)
	}
	return ErrNotConfirmed
}

// diagnostics converts the JSON stream's diagnostics for preflight.
func diagnostics(p *provision.Progress) []preflight.Diagnostic {
	var out []preflight.Diagnostic
	for _, d := range p.Diagnostics() {
		pd := preflight.Diagnostic{Severity: d.Severity, Summary: d.Summary, Detail: d.Detail, Address: d.Address}
		if d.Range != nil {
			pd.File, pd.Line = d.Range.Filename, d.Range.Start.Line
		}
		out = append(out, pd)
	}
	return out
}

// requireTerraform turns a missing terraform into the seed-problem-1
// finding's refusal.
func (s *session) requireTerraform() error {
	if s.runner != nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrRefused, s.tfErr)
}
