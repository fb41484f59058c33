package main

// The one way the end-to-end tests start the controller binary and wait
// until it serves.

import (
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sopilot/sopilot/internal/slurmtest"
	"github.com/sopilot/sopilot/internal/testbin"
	"github.com/sopilot/sopilot/pkg/apipb"
)

// controllerBinary builds the controller once per test process.
func controllerBinary(t testing.TB) string { return testbin.Build(t, "controller", raceBuild) }

// proc is one running controller process. conn and runs are set by
// startController (plaintext); launch leaves them nil.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	conn   *grpc.ClientConn
	runs   apipb.RunServiceClient
	stderr *lockedBuffer
}

type lockedBuffer = testbin.Buffer

var listenRE = regexp.MustCompile(`controller listening on (\S+)`)

// controllerCPUsEnv, when set (e.g. "0"), runs the controller under
// taskset on those CPUs, so that benchmarks can keep it apart from the
// load they generate (run the test binary itself on the other CPUs).
const controllerCPUsEnv = "SOPILOT_BENCH_CONTROLLER_CPUS"

// launch starts the binary with exactly args against the local cluster
// and waits until it prints its address. The process is killed at the end
// of the test, and its log shown if the test failed.
func launch(t testing.TB, env slurmtest.Env, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(controllerBinary(t), args...)
	if cpus := os.Getenv(controllerCPUsEnv); cpus != "" {
		cmd = exec.Command("taskset", append([]string{"-c", cpus, controllerBinary(t)}, args...)...)
	}
	cmd.Env = env.Environ()
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}}
	p.addr = testbin.Start(t, cmd, p.stderr, listenRE)[1]
	return p
}

// startController starts the binary in insecure mode on a free port with
// db, and extra flags, and connects to it.
func startController(t testing.TB, env slurmtest.Env, db string, extra ...string) *proc {
	t.Helper()
	args := []string{
		"--db", db, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "",
		"--poll-interval", "1s", "--default-workdir", t.TempDir(), "--log-level", "debug", "--insecure",
	}
	if _, ok := t.(*testing.B); ok {
		args = append(args, "--log-level", "warn")
	}
	args = append(args, extra...) // last, so a test can override the above
	p := launch(t, env, args...)
	var err error
	p.conn, err = grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	p.runs = apipb.NewRunServiceClient(p.conn)
	return p
}

// restArgs are the controller's arguments for the local cluster's
// slurmrestd, with tokens minted from Slurm's JWT key.
func restArgs(t testing.TB, env slurmtest.Env) []string {
	t.Helper()
	if env.RESTURL == "" || env.JWTKeyFile == "" {
		t.Fatal("the local cluster gave no slurmrestd URL or JWT key (hack/slurm/cluster.sh env)")
	}
	return []string{"--scheduler", "rest", "--slurmrestd-url", env.RESTURL, "--slurmrestd-api-version", "auto",
		"--slurm-user", env.JWTUser, "--slurm-jwt-key-file", env.JWTKeyFile}
}

func (p *proc) kill9(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}
