package cli

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUsageHintsNameTheFailingCommand: a usage error points at the help of
// the command that refused it, and a mistyped subcommand gets cobra's
// suggestions at every level, not only below the root.
func TestUsageHintsNameTheFailingCommand(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag of a subcommand", []string{"run", "list", "--bogus"},
			"sopilot: unknown flag: --bogus\nRun 'sopilot run list --help' for usage.\n"},
		{"missing argument", []string{"node", "get"},
			"sopilot: sopilot node get wants NAME, got 0 argument(s)\nRun 'sopilot node get --help' for usage.\n"},
		{"typo below the root", []string{"node", "lsit"},
			"sopilot: unknown command \"lsit\" for \"sopilot node\"\n\nDid you mean this?\n\tlist\n\nRun 'sopilot node --help' for usage.\n"},
		{"typo in the cluster group", []string{"cluster", "prefligt"},
			"sopilot: unknown command \"prefligt\" for \"sopilot cluster\"\n\nDid you mean this?\n\tpreflight\n\nRun 'sopilot cluster --help' for usage.\n"},
		{"typo at the root", []string{"nodse"},
			"sopilot: unknown command \"nodse\" for \"sopilot\"\n\nDid you mean this?\n\tnode\n\tnodes\n\nRun 'sopilot --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sopilot(t, invocation{args: tt.args})
			if r.code != ExitUsage || r.stderr != tt.want {
				t.Errorf("exit %d, stderr\n%q\nwant exit %d,\n%q", r.code, r.stderr, ExitUsage, tt.want)
			}
		})
	}
}

// TestNotFoundSaysItOnce: the controller's NOT_FOUND message names the
// object; the CLI does not say "not found" or the name twice.
func TestNotFoundSaysItOnce(t *testing.T) {
	tests := []struct {
		name, what, msg, want string
	}{
		{"run, sentinel text repeated", "get run r-1", `run "r-1": run not found`, `run "r-1" not found`},
		{"run, already plain", "watch run r-2", `run "r-2" not found`, `run "r-2" not found`},
		{"node with a reason", "get node worker-9", `node "worker-9" not found: no agent has reported it and Slurm does not list it`,
			`node "worker-9" not found: no agent has reported it and Slurm does not list it`},
		{"message naming something else", "compare r-1 r-2", `no results for metric "loss"`, `compare r-1 r-2: not found: no results for metric "loss"`},
	}
	o := &clientOptions{controller: DefaultController}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := o.clientError(tt.what, status.Error(codes.NotFound, tt.msg))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestControllerTarget: a host alone dials the controller's port (not
// gRPC's 443); an http:// URL is refused with what to write instead.
func TestControllerTarget(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "localhost", want: "localhost:50051"},
		{in: "10.0.0.5", want: "10.0.0.5:50051"},
		{in: "[::1]", want: "[::1]:50051"},
		{in: "::1", want: "[::1]:50051"},
		{in: "ctl.example.com:443", want: "ctl.example.com:443"},
		{in: "dns:///ctl.example.com:50051", want: "dns:///ctl.example.com:50051"},
		{in: "http://localhost:50051", wantErr: `--controller "http://localhost:50051": the controller speaks gRPC, not HTTP, and takes no URL scheme: write --controller localhost:50051 (and --insecure if the controller serves plaintext)`},
		{in: "https://ctl.example.com/", wantErr: `--controller "https://ctl.example.com/": the controller speaks gRPC, not HTTP, and takes no URL scheme: write --controller ctl.example.com:50051`},
		{in: "", wantErr: "--controller is empty; want host:port, e.g. 127.0.0.1:50051"},
		{in: "a b", wantErr: `--controller "a b": want host:port, e.g. 127.0.0.1:50051`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := controllerTarget(tt.in)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrUsage) || err.Error() != "usage: "+tt.wantErr {
					t.Fatalf("got %q, %v; want usage error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestControllerHTTPRefusedBeforeDialling: the CLI says what to write, with
// the usage exit code, instead of "cannot reach the controller".
func TestControllerHTTPRefusedBeforeDialling(t *testing.T) {
	r := sopilot(t, invocation{args: []string{"nodes", "--controller", "http://localhost:50051"}})
	if r.code != ExitUsage || !strings.Contains(r.stderr, "speaks gRPC, not HTTP") || strings.Contains(r.stderr, "is it running") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
