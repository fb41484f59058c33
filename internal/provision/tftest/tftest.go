// Package tftest finds the real terraform binary for tests and keeps it
// offline.
//
// Tests call Require, which returns the binary's path or skips the test
// when there is none, unless SOPILOT_REQUIRE_TERRAFORM=1, in which case the
// test fails instead (make test sets it after installing bin/terraform, so
// a missing binary fails the build rather than silently skipping).
//
// The binary is, in order: $SOPILOT_TERRAFORM; bin/terraform at the
// repository root (`make tools` installs v1.5.7 there); terraform on PATH.
package tftest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// RequireEnvVar turns a missing terraform from a skip into a failure.
const RequireEnvVar = "SOPILOT_REQUIRE_TERRAFORM"

// PathEnvVar names the binary explicitly.
const PathEnvVar = "SOPILOT_TERRAFORM"

var (
	once   sync.Once
	found  string
	reason string
)

// Require returns the terraform binary's absolute path, or ends the test.
func Require(t testing.TB) string {
	t.Helper()
	once.Do(func() { found, reason = lookup() })
	if reason == "" {
		return found
	}
	fatal, msg := verdict(reason, os.Getenv(RequireEnvVar))
	if fatal {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// verdict says whether a missing binary fails the test, and why.
func verdict(reason, require string) (fatal bool, msg string) {
	msg = "no terraform binary: " + reason +
		" (install it with `make tools`, i.e. `GOBIN=$PWD/bin go install github.com/hashicorp/terraform@v1.5.7`, or set " + PathEnvVar + ")"
	if require == "1" {
		return true, msg + "; " + RequireEnvVar + "=1 makes this a failure"
	}
	return false, msg
}

func lookup() (string, string) {
	if p := os.Getenv(PathEnvVar); p != "" {
		if isExecutable(p) {
			abs, _ := filepath.Abs(p)
			return abs, ""
		}
		return "", fmt.Sprintf("%s=%s is not an executable file", PathEnvVar, p)
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, "bin", "terraform")
		if isExecutable(p) {
			return p, ""
		}
	}
	p, err := exec.LookPath("terraform")
	if err != nil {
		return "", "not in bin/ at the repository root and not on PATH"
	}
	abs, _ := filepath.Abs(p)
	return abs, ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// RepoRoot walks up from the working directory to the go.mod of
// github.com/sopilot/sopilot.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/sopilot/sopilot\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found")
		}
		dir = parent
	}
}

// OfflineEnv returns the environment additions that keep Terraform off the
// network: a CLI configuration forbidding direct provider installation (the
// test configurations use only the built-in terraform_data) and no
// checkpoint call.
func OfflineEnv(t testing.TB) map[string]string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "offline.tfrc")
	const body = `disable_checkpoint = true
provider_installation {
  direct {
    exclude = ["*/*/*"]
  }
}
`
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"TF_CLI_CONFIG_FILE": cfg, "CHECKPOINT_DISABLE": "1"}
}

// CopyConfig copies a configuration directory into a fresh temporary
// directory, so that .terraform, state and plan files never land in
// testdata.
func CopyConfig(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}
