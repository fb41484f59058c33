package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/sopilot/sopilot/internal/provision"
	"github.com/sopilot/sopilot/internal/provision/preflight"
)

const planLong = `Check the installation, run terraform init and terraform plan, and save the
plan to a file. Nothing in the cloud changes.

Before Terraform runs, the preflight checks look for missing tools, a Terraform
too old for the configuration, missing module directories and (with --quota)
filesystem sizes over quota; after planning, the plan itself is checked for
filesystems that would shrink and for planned sizes over --quota. Any error
refuses the plan (exit 3) and the plan file is removed, so it cannot be
applied by mistake.

Progress and Terraform's diagnostics go to stderr; the summary (or with -o
json, a sopilot.cluster.plan/v1 document) goes to stdout.`

const planExample = `  # plan the seed's installation against a 5 TiB filesystem quota
  sopilot cluster plan --dir soperator/installations/demo --quota 5TiB

  # with an extra variable file, the plan written elsewhere, JSON for CI
  sopilot cluster plan --dir soperator/installations/demo --var-file smaller.tfvars \
    --out /tmp/demo.tfplan -o json > plan.json`

func newClusterPlanCommand(a *app, o *clusterOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "plan",
		Short:   "Preflight, then terraform plan to a file (changes nothing)",
		Long:    planLong,
		Example: planExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := newSession(ctx, a, o)
			if err != nil {
				return err
			}
			rep := &RunReport{Kind: KindPlan, Dir: o.dir, Terraform: s.terraformInfo()}
			res, err := s.checkedPlan(ctx, rep, false, planPath(out, o.dir))
			if err == nil && a.json() {
				return s.report(rep, nil)
			}
			if err == nil {
				printFindings(a.env.Stdout, rep.Findings, a.colorFor(a.env.Stdout))
				if rep.Changes.empty() {
					fmt.Fprintln(a.env.Stdout, "No changes: the cluster matches the configuration.")
					return nil
				}
				printResources(a.env.Stdout, rep.Resources)
				fmt.Fprintf(a.env.Stdout, "Plan: %s.\nSaved the plan to %s. Apply exactly this plan with:\n  sopilot cluster apply --dir %s --plan %s\n",
					rep.Changes, res.Path, o.dir, res.Path)
				return nil
			}
			return s.report(rep, err)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to save the plan (default: sopilot.tfplan in --dir)")
	return cmd
}

func planPath(out, dir string) string {
	if out == "" {
		return filepath.Join(dir, "sopilot.tfplan")
	}
	return out
}

// checkedPlan runs the static checks, init, plan and the plan checks,
// filling rep. It refuses (ErrRefused) on an error finding before or after
// planning.
func (s *session) checkedPlan(ctx context.Context, rep *RunReport, destroy bool, out string) (*provision.PlanResult, error) {
	fs, _, err := s.staticChecks(!destroy)
	if err != nil {
		return nil, err
	}
	rep.Findings = fs
	if preflight.Blocking(fs) {
		rep.Refused = true
		return nil, ErrRefused
	}
	if err := s.requireTerraform(); err != nil {
		return nil, err
	}
	defer s.notifyInterrupt(ctx)()
	fmt.Fprintln(s.a.env.Stderr, "Initializing the installation (terraform init)...")
	if err := s.runner.Init(ctx, nil); err != nil {
		return nil, err
	}
	res, err := s.runner.Plan(ctx, provision.PlanRequest{Out: out, VarFiles: s.varFiles, Destroy: destroy}, s.progress(false))
	if err != nil {
		return nil, err
	}
	changes, resources := summarizePlan(res.Plan)
	rep.PlanFile, rep.Changes, rep.Resources = res.Path, &changes, resources
	if err := s.checkPlan(res, rep, true); err != nil {
		return nil, err
	}
	return res, nil
}

// checkPlan runs the plan checks. When they refuse a plan file sopilot
// made (own), it is removed so that it cannot be applied by hand.
func (s *session) checkPlan(res *provision.PlanResult, rep *RunReport, own bool) error {
	fs := preflight.Plan(res.Plan, s.quota, s.rules, s.o.dir)
	// The tfvars quota check already reported the total; keep only what
	// the plan adds to it.
	fs = slices.DeleteFunc(fs, func(f preflight.Finding) bool {
		return f.Check == preflight.CheckQuota && f.Severity == preflight.Info
	})
	fs = preflight.Allow(fs, s.o.allow)
	rep.Findings = append(rep.Findings, fs...)
	preflight.Sort(rep.Findings)
	if preflight.Blocking(fs) {
		rep.Refused = true
		if own {
			if err := os.Remove(res.Path); err == nil {
				rep.PlanFile = ""
			}
		}
		return ErrRefused
	}
	return nil
}

// report prints rep (JSON or table) and returns err.
func (s *session) report(rep *RunReport, err error) error {
	if err != nil {
		rep.Error = err.Error()
	}
	if s.a.json() {
		if werr := writeJSON(s.a.env.Stdout, s.a.root.output, rep); werr != nil && err == nil {
			return werr
		}
		return err
	}
	printFindings(s.a.env.Stdout, rep.Findings, s.a.colorFor(s.a.env.Stdout))
	return err
}

const applyLong = `Apply a plan: exactly the saved plan given with --plan, or, without --plan,
a fresh one made the way 'sopilot cluster plan' makes it (same checks). The
plan is checked (filesystem shrink, quota) and summarised, and applied only
after you type "yes" (or with --yes).

When apply fails because resources already exist in the cloud (an earlier
apply created them and lost track), the terraform import commands that adopt
them are printed.

Ctrl-C stops Terraform gracefully: it finishes the calls in flight and saves
its state (exit 130); run plan again to see where things stand.`

const applyExample = `  # plan, review, apply
  sopilot cluster plan  --dir soperator/installations/demo --quota 5TiB
  sopilot cluster apply --dir soperator/installations/demo --plan soperator/installations/demo/sopilot.tfplan

  # plan and apply in one go, asking before applying
  sopilot cluster apply --dir soperator/installations/demo --quota 5TiB

  # in CI: no prompt, JSON report
  sopilot cluster apply --dir soperator/installations/demo --plan demo.tfplan --yes -o json`

func newClusterApplyCommand(a *app, o *clusterOptions) *cobra.Command {
	var planFile, out string
	var yes bool
	cmd := &cobra.Command{
		Use:     "apply",
		Short:   "Apply a checked plan (asks first unless --yes)",
		Long:    applyLong,
		Example: applyExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := newSession(ctx, a, o)
			if err != nil {
				return err
			}
			rep := &RunReport{Kind: KindApply, Dir: o.dir, Terraform: s.terraformInfo()}
			return s.report(rep, s.apply(ctx, rep, planFile, planPath(out, o.dir), yes, false))
		},
	}
	cmd.Flags().StringVar(&planFile, "plan", "", "apply exactly this saved plan (from sopilot cluster plan); default: plan now")
	cmd.Flags().StringVar(&out, "out", "", "without --plan: where to save the fresh plan (default: sopilot.tfplan in --dir)")
	cmd.Flags().BoolVar(&yes, "yes", false, "apply without asking")
	return cmd
}

const destroyLong = `Destroy everything the installation created: a destroy plan is made and
summarised, and applied only after you type "yes" (or with --yes).`

const destroyExample = `  sopilot cluster destroy --dir soperator/installations/demo
  sopilot cluster destroy --dir soperator/installations/demo --yes -o json`

func newClusterDestroyCommand(a *app, o *clusterOptions) *cobra.Command {
	var out string
	var yes bool
	cmd := &cobra.Command{
		Use:     "destroy",
		Short:   "Destroy the cluster through a destroy plan (asks first unless --yes)",
		Long:    destroyLong,
		Example: destroyExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := newSession(ctx, a, o)
			if err != nil {
				return err
			}
			rep := &RunReport{Kind: KindDestroy, Dir: o.dir, Terraform: s.terraformInfo()}
			path := out
			if path == "" {
				path = filepath.Join(o.dir, "sopilot-destroy.tfplan")
			}
			return s.report(rep, s.apply(ctx, rep, "", path, yes, true))
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to save the destroy plan (default: sopilot-destroy.tfplan in --dir)")
	cmd.Flags().BoolVar(&yes, "yes", false, "destroy without asking")
	return cmd
}

// apply plans (or shows the saved plan), checks, confirms and applies.
func (s *session) apply(ctx context.Context, rep *RunReport, planFile, out string, yes, destroy bool) error {
	var res *provision.PlanResult
	var err error
	if planFile != "" {
		if err := s.requireTerraform(); err != nil {
			return err
		}
		plan, err := s.runner.ShowPlan(ctx, planFile)
		if err != nil {
			return err
		}
		res = &provision.PlanResult{Path: planFile, Plan: plan}
		changes, resources := summarizePlan(plan)
		rep.PlanFile, rep.Changes, rep.Resources = planFile, &changes, resources
		if err := s.checkPlan(res, rep, false); err != nil {
			return err
		}
	} else if res, err = s.checkedPlan(ctx, rep, destroy, out); err != nil {
		return err
	}
	if rep.Changes.empty() {
		fmt.Fprintln(s.a.env.Stderr, "No changes: the cluster matches the configuration.")
		rep.Applied = true
		return s.collectOutputs(ctx, rep, destroy)
	}
	if !s.a.json() {
		printFindings(s.a.env.Stderr, rep.Findings, s.a.colorFor(s.a.env.Stderr))
		rep.Findings = nil // printed; report() would print them again
	}
	if !yes {
		fmt.Fprintln(s.a.env.Stderr)
		printResources(s.a.env.Stderr, rep.Resources)
		question := fmt.Sprintf("Apply these changes to %s (%s)?", s.o.dir, rep.Changes)
		if destroy {
			question = fmt.Sprintf("Destroy these %d resources of %s?", rep.Changes.Destroy, s.o.dir)
		}
		if err := s.confirm(question); err != nil {
			return err
		}
	}
	defer s.notifyInterrupt(ctx)()
	prog := s.progress(false)
	if err := s.runner.Apply(ctx, res.Path, prog); err != nil {
		cmds := preflight.ImportCommands(diagnostics(prog), s.rules)
		if len(cmds) > 0 {
			rep.ImportCommands = cmds
			rep.Findings = append(rep.Findings, preflight.ImportFinding(cmds)...)
		}
		if errors.Is(err, provision.ErrCancelled) {
			fmt.Fprintln(s.a.env.Stderr, "Terraform stopped and saved its state. Run 'sopilot cluster plan' to see what is left to do.")
			return err
		}
		if _, _, errored := prog.Counts(); errored > 0 {
			return fmt.Errorf("%w (%d resource(s) failed; Terraform's errors are above)", err, errored)
		}
		return err
	}
	rep.Applied = true
	if planFile == "" { // the fresh plan is spent once applied
		if err := os.Remove(res.Path); err == nil {
			rep.PlanFile = ""
		}
	}
	if !s.a.json() {
		if destroy {
			fmt.Fprintf(s.a.env.Stdout, "Destroy complete: %d resources destroyed.\n", rep.Changes.Destroy)
		} else {
			fmt.Fprintf(s.a.env.Stdout, "Apply complete: %s.\n", rep.Changes)
		}
	}
	return s.collectOutputs(ctx, rep, destroy)
}

func (s *session) collectOutputs(ctx context.Context, rep *RunReport, destroy bool) error {
	if destroy {
		return nil
	}
	outs, err := s.runner.Outputs(ctx)
	if err != nil {
		return err
	}
	rep.Outputs = map[string]OutputValue{}
	for name, o := range outs {
		v := OutputValue{Sensitive: o.Sensitive, Value: json.RawMessage(o.Value)}
		if o.Sensitive {
			v.Value = json.RawMessage("null")
		}
		rep.Outputs[name] = v
	}
	if !s.a.json() && len(outs) > 0 {
		fmt.Fprintln(s.a.env.Stdout, "Outputs:")
		for _, name := range sortedKeys(rep.Outputs) {
			fmt.Fprintf(s.a.env.Stdout, "  %s = %s\n", name, renderValue(rep.Outputs[name]))
		}
	}
	return nil
}

func renderValue(v OutputValue) string {
	if v.Sensitive {
		return "(sensitive)"
	}
	var str string
	if err := json.Unmarshal(v.Value, &str); err == nil {
		return str
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v.Value); err == nil {
		return compact.String()
	}
	return string(v.Value)
}
