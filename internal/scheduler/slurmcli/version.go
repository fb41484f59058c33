package slurmcli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrIncompatibleClient means the controller's Slurm tools and slurmctld
// are releases that Slurm does not let talk to each other: every sbatch
// would fail. Fix it by building the controller-slurmcli image for the
// cluster's Slurm (or using slurmrestd).
var ErrIncompatibleClient = errors.New("slurm client and slurmctld are incompatible")

// Release is a Slurm version: 24.11.5 is major release 24.11,
// maintenance level 5.
type Release struct{ Year, Month, Micro int }

func (r Release) String() string { return fmt.Sprintf("%02d.%02d.%d", r.Year, r.Month, r.Micro) }

// Major is the major release, "24.11".
func (r Release) Major() string { return fmt.Sprintf("%02d.%02d", r.Year, r.Month) }

// ParseRelease parses "24.11.5" (a pre-release suffix such as
// "25.05.0-0rc1" is ignored after the maintenance number).
func ParseRelease(s string) (Release, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ".", 3)
	if len(parts) != 3 {
		return Release{}, fmt.Errorf("slurm version %q: want YY.MM.N", s)
	}
	micro := parts[2]
	if i := strings.IndexFunc(micro, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		micro = micro[:i]
	}
	var r Release
	var errs [3]error
	r.Year, errs[0] = strconv.Atoi(parts[0])
	r.Month, errs[1] = strconv.Atoi(parts[1])
	r.Micro, errs[2] = strconv.Atoi(micro)
	if errors.Join(errs[:]...) != nil || r.Year < 0 || r.Year > 99 || r.Month < 1 || r.Month > 12 || r.Micro < 0 {
		return Release{}, fmt.Errorf("slurm version %q: want YY.MM.N", s)
	}
	return r, nil
}

// olderMajors lists Slurm's major releases before the six-month cycle,
// oldest first; from 24.05 on there is one in May and one in November.
var olderMajors = []string{"20.02", "20.11", "21.08", "22.05", "23.02", "23.11"}

// majorIndex is the position of r's major release in Slurm's sequence of
// major releases; ok is false for one that never existed.
func majorIndex(r Release) (int, bool) {
	for i, m := range olderMajors {
		if r.Major() == m {
			return i, true
		}
	}
	if r.Year < 24 || (r.Month != 5 && r.Month != 11) {
		return 0, false
	}
	i := len(olderMajors) + (r.Year-24)*2
	if r.Month == 11 {
		i++
	}
	return i, true
}

// CheckCompatible applies Slurm's compatibility window
// (https://slurm.schedmd.com/upgrades.html, "Compatibility Window"):
// slurmctld accepts commands of its own major release and of the previous
// two, or from 24.11 on the previous three; never of a newer one. It
// returns nil, or an error wrapping ErrIncompatibleClient that says which
// releases would do.
func CheckCompatible(client, server Release) error {
	ci, cok := majorIndex(client)
	si, sok := majorIndex(server)
	if !cok || !sok {
		return nil // a release this code does not know: let Slurm judge
	}
	window := 2
	if server.Year > 24 || (server.Year == 24 && server.Month >= 11) {
		window = 3
	}
	if ci <= si && si-ci <= window {
		return nil
	}
	var oldest Release
	if j := si - window; j < len(olderMajors) {
		oldest, _ = ParseRelease(olderMajors[max(j, 0)] + ".0")
	} else {
		j -= len(olderMajors)
		oldest = Release{Year: 24 + j/2, Month: 5 + 6*(j%2)}
	}
	return fmt.Errorf("%w: the Slurm tools are %s, slurmctld is %s, which accepts clients from %s to %s "+
		"(https://slurm.schedmd.com/upgrades.html); build controller-slurmcli for this Slurm or use the REST backend",
		ErrIncompatibleClient, client, server, oldest.Major(), server.Major())
}

// parseToolVersion reads what "sbatch --version" prints: "slurm 24.11.5"
// (SchedMD's builds) or "slurm-wlm 24.11.5" (Debian's).
func parseToolVersion(out []byte) (Release, error) {
	f := strings.Fields(string(out))
	if len(f) != 2 || !strings.HasPrefix(f[0], "slurm") {
		return Release{}, fmt.Errorf("unexpected version output %q", truncate(string(out), 80))
	}
	return ParseRelease(f[1])
}

// parseConfigVersion finds "SLURM_VERSION = 24.11.5" in what "scontrol
// show config" prints. The value is slurmctld's own version: scontrol
// prints the configuration that slurmctld sends.
func parseConfigVersion(out []byte) (Release, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.TrimSpace(k) == "SLURM_VERSION" {
			return ParseRelease(v)
		}
	}
	return Release{}, errors.New("no SLURM_VERSION in scontrol show config")
}

// versionCheckEvery is how often Ping looks at the versions again: a
// slurmctld can be upgraded under a running controller.
const versionCheckEvery = 10 * time.Minute

// versions is what the last check found.
type versions struct {
	client, server Release
	at             time.Time
}

// SlurmVersions names the Slurm releases of the tools and of slurmctld
// as the last successful Ping found them ("" before that), for the
// controller's readiness message.
func (b *Backend) SlurmVersions() string {
	v := b.versions.Load()
	if v == nil {
		return ""
	}
	return "Slurm tools " + v.client.String() + ", slurmctld " + v.server.String()
}

// checkVersions reads the tools' and slurmctld's versions and applies
// CheckCompatible. It runs after a successful scontrol ping, at most every
// versionCheckEvery.
func (b *Backend) checkVersions(ctx context.Context) error {
	if v := b.versions.Load(); v != nil && time.Since(v.at) < versionCheckEvery {
		return nil
	}
	client, err := b.clientVersion(ctx)
	if err != nil {
		return err
	}
	res, err := b.run(ctx, "scontrol", command{path: b.cfg.Scontrol, args: []string{"show", "config"}, env: toolEnv(b.base)})
	if err != nil {
		return err
	}
	if res.exitCode != 0 {
		return toolError("scontrol show config", res, nil)
	}
	server, err := parseConfigVersion(res.stdout)
	if err != nil {
		return fmt.Errorf("scontrol show config: %w", err)
	}
	if err := CheckCompatible(client, server); err != nil {
		return err
	}
	b.versions.Store(&versions{client: client, server: server, at: time.Now()})
	return nil
}

// clientVersion is sbatch's own version.
func (b *Backend) clientVersion(ctx context.Context) (Release, error) {
	res, err := b.run(ctx, "sbatch", command{path: b.cfg.Sbatch, args: []string{"--version"}, env: toolEnv(b.base)})
	if err != nil {
		return Release{}, err
	}
	if res.exitCode != 0 {
		return Release{}, toolError("sbatch --version", res, nil)
	}
	r, err := parseToolVersion(res.stdout)
	if err != nil {
		return Release{}, fmt.Errorf("sbatch --version: %w", err)
	}
	return r, nil
}
