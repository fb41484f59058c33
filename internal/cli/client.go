package cli

// client.go: what the command groups that talk to the controller's gRPC API
// (run, compare) share: the connection flags, the connection, gRPC errors
// turned into messages that say what to do, and protojson output.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// DefaultController is the controller address the CLI dials by default.
const DefaultController = "127.0.0.1:50051"

// defaultControllerPort is the controller's gRPC port, dialled when
// --controller names a host only (gRPC's own default would be 443).
const defaultControllerPort = "50051"

// controllerTarget is --controller as gRPC dials it: host:port, with the
// controller's port when only a host is given. A URL with a scheme other
// than gRPC's own resolvers (dns:, unix:) is refused: the controller
// speaks gRPC, not HTTP.
func controllerTarget(addr string) (string, error) {
	if addr == "" {
		return "", fmt.Errorf("%w: --controller is empty; want host:port, e.g. %s", ErrUsage, DefaultController)
	}
	if scheme, rest, ok := strings.Cut(addr, "://"); ok {
		switch strings.ToLower(scheme) {
		case "http", "https", "grpc", "grpcs":
			hint := ""
			if strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "grpc") {
				hint = " (and --insecure if the controller serves plaintext)"
			}
			return "", fmt.Errorf("%w: --controller %q: the controller speaks gRPC, not HTTP, and takes no URL scheme: write --controller %s%s",
				ErrUsage, addr, withControllerPort(strings.TrimSuffix(rest, "/")), hint)
		}
	}
	if strings.HasPrefix(addr, "dns:") || strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "passthrough:") {
		return addr, nil // a gRPC target that names its resolver
	}
	if strings.ContainsAny(addr, "/ ") {
		return "", fmt.Errorf("%w: --controller %q: want host:port, e.g. %s", ErrUsage, addr, DefaultController)
	}
	return withControllerPort(addr), nil
}

// withControllerPort adds the controller's port to a bare host
// ("localhost", "10.0.0.5", "[::1]", "::1").
func withControllerPort(hostport string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	host := strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	return net.JoinHostPort(host, defaultControllerPort)
}

// clientOptions are the connection flags of every group that talks to the
// controller.
type clientOptions struct {
	controller string
	insecure   bool
	timeout    time.Duration
	caFile     string
	serverName string
	token      string
	tokenFile  string
}

// addClientFlags registers the connection flags as persistent flags of a
// group (groups cannot share flags through the root, which belongs to
// everyone).
func addClientFlags(cmd *cobra.Command, o *clientOptions) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.controller, "controller", DefaultController, "address (host:port; a host alone means port "+defaultControllerPort+") of the sopilot controller's gRPC API, no http:// (it speaks gRPC)")
	pf.BoolVar(&o.insecure, "insecure", false, "plaintext gRPC without TLS or a token, for a controller started with --insecure (local development)")
	pf.StringVar(&o.caFile, "tls-ca-file", "", "CA certificate (PEM) that signs the controller's certificate (default: the system's roots)")
	pf.StringVar(&o.serverName, "tls-server-name", "", "name to verify in the controller's certificate (default: the host of --controller)")
	pf.StringVar(&o.token, "token", "", "bearer token for the controller's API (prefer --token-file or SOPILOT_TOKEN: flags show up in ps)")
	pf.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "limit for each call to the controller (not for watching a run)")
}

// bearer sends the token with every call; only over TLS.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return true }

// dial connects to the controller. grpc.NewClient does not connect yet: an
// unreachable controller shows up as Unavailable on the first call, which
// clientError explains.
func (o *clientOptions) dial() (*grpc.ClientConn, error) {
	target, err := controllerTarget(o.controller)
	if err != nil {
		return nil, err
	}
	o.controller = target // messages name the address dialled
	if o.timeout <= 0 {
		return nil, fmt.Errorf("%w: --timeout must be positive, e.g. 30s", ErrUsage)
	}
	opts, err := o.transport(target)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: --controller %q: %w", ErrUsage, o.controller, err)
	}
	return conn, nil
}

// transport is plaintext under --insecure, else TLS with the bearer token.
func (o *clientOptions) transport(target string) ([]grpc.DialOption, error) {
	token := o.token
	if o.tokenFile != "" {
		if token != "" {
			return nil, fmt.Errorf("%w: give --token or --token-file, not both", ErrUsage)
		}
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --token-file: %w", ErrUsage, err)
		}
		token = strings.TrimSpace(string(b))
	}
	if o.insecure {
		if token != "" || o.caFile != "" {
			return nil, fmt.Errorf("%w: --insecure sends everything in clear text: drop the token and TLS flags, or --insecure", ErrUsage)
		}
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.serverName}
	if tc.ServerName == "" {
		if h, _, err := net.SplitHostPort(target); err == nil {
			tc.ServerName = h
		}
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --tls-ca-file: %w", ErrUsage, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --tls-ca-file %s: no PEM certificate in it", ErrUsage, o.caFile)
		}
		tc.RootCAs = pool
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	return opts, nil
}

// call bounds one unary call by --timeout.
func (o *clientOptions) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, o.timeout)
}

// clientError turns an error from a call to the controller into one that
// says what happened and what to do. what names the operation ("get run
// r-1"). Errors that are not gRPC statuses pass through.
func (o *clientOptions) clientError(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch st.Code() {
	case codes.Unavailable:
		if !o.insecure && (strings.Contains(st.Message(), "tls:") || strings.Contains(st.Message(), "handshake") || strings.Contains(st.Message(), "EOF")) {
			return unreachable(fmt.Errorf("%s: TLS with the controller at %s failed: a controller started with --insecure needs --insecure (SOPILOT_INSECURE=true) here; otherwise check --tls-ca-file / --tls-server-name\n  (%s)", what, o.controller, st.Message()))
		}
		return unreachable(fmt.Errorf("%s: cannot reach the controller at %s: is it running? (--controller / SOPILOT_CONTROLLER)\n  (%s)", what, o.controller, st.Message()))
	case codes.Unauthenticated:
		return fmt.Errorf("%s: the controller wants a token: %s (--token-file / SOPILOT_TOKEN)", what, st.Message())
	case codes.PermissionDenied:
		return fmt.Errorf("%s: permission denied: %s", what, st.Message())
	case codes.ResourceExhausted:
		return fmt.Errorf("%s: rate limited by the controller: %s (try again shortly)", what, st.Message())
	case codes.DeadlineExceeded:
		return unreachable(fmt.Errorf("%s: the controller at %s did not answer within %s (--timeout / SOPILOT_TIMEOUT)", what, o.controller, o.timeout))
	case codes.NotFound:
		return notFound(what, st.Message())
	case codes.InvalidArgument:
		if vs := fieldViolations(st); len(vs) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "%s: the controller refused the request:", what)
			for _, v := range vs {
				fmt.Fprintf(&b, "\n  %s: %s", v.GetField(), v.GetDescription())
			}
			return errors.New(b.String())
		}
		return fmt.Errorf("%s: invalid request: %s", what, st.Message())
	case codes.FailedPrecondition:
		return fmt.Errorf("%s: refused: %s", what, st.Message())
	case codes.Aborted:
		return fmt.Errorf("%s: %s (try again in a moment)", what, st.Message())
	case codes.Unimplemented:
		return fmt.Errorf("%s: the controller at %s does not implement this yet: %s", what, o.controller, st.Message())
	case codes.Canceled:
		return context.Canceled
	}
	return fmt.Errorf("%s: %s: %s", what, st.Code(), st.Message())
}

// repeatedNotFound is the controller's `run "r-1": run not found`: a name,
// then the sentinel error's text that names the kind again.
var repeatedNotFound = regexp.MustCompile(`^(\w+) ("[^"]*"): (?:\w+ )?not found$`)

// notFound says once what was not found. The controller's message names
// the object (`node "worker-9" not found: ...`); when it names the one the
// operation was about, the message alone is the error (as kubectl's
// `pods "x" not found`), else the operation comes first.
func notFound(what, msg string) error {
	if m := repeatedNotFound.FindStringSubmatch(msg); m != nil {
		msg = m[1] + " " + m[2] + " not found"
	}
	if !strings.Contains(msg, "not found") {
		msg = "not found: " + msg
	}
	if f := strings.Fields(what); len(f) > 0 && strings.Contains(msg, strconv.Quote(f[len(f)-1])) {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %s", what, msg)
}

func fieldViolations(st *status.Status) []*errdetails.BadRequest_FieldViolation {
	var vs []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			vs = append(vs, br.GetFieldViolations()...)
		}
	}
	return vs
}

// writeProto prints m as indented protojson (or, for -o yaml, the same
// document as YAML), zero values included so that scripts can rely on
// every field being there. protojson's own whitespace
// varies on purpose from build to build; json.Indent makes it stable.
func writeProto(w io.Writer, format string, m proto.Message) error {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	doc, err := formatJSONDoc(format, out.Bytes())
	if err != nil {
		return err
	}
	_, err = w.Write(doc)
	return err
}

// writeProtoLine prints m as one line of JSON (for streams); for -o yaml,
// as one YAML document that starts with "---".
func writeProtoLine(w io.Writer, format string, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return err
	}
	out.WriteByte('\n')
	if format == formatYAML {
		doc, err := jsonToYAML(out.Bytes())
		if err != nil {
			return err
		}
		_, err = w.Write(append([]byte("---\n"), doc...))
		return err
	}
	_, err = w.Write(out.Bytes())
	return err
}
