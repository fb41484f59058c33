// Package slurmrest implements scheduler.Backend on top of slurmrestd, Slurm's
// REST API daemon.
//
// One Backend speaks one OpenAPI plugin version, chosen by Config.APIVersion,
// either fixed ("v0.0.42") or "auto": then the first request (or
// Backend.Negotiate, meant for startup) reads the versions slurmrestd serves
// from the /slurm/v0.0.N/ paths of its GET /openapi/v3 document (which wants
// a token from Slurm 24.11 on; every request carries one) and takes the
// newest this package speaks, v0.0.38 to v0.0.45; where the document cannot
// be had it probes GET /slurm/{version}/ping from the newest version down.
// Backend.APIVersion says which was chosen, and the choice is logged. What
// the Slurm packages of these machines serve (slurmrestd -s slurmctld):
// 22.05.8 only v0.0.38, 24.11.5 v0.0.40 to v0.0.42, 26.05.5 v0.0.42 to
// v0.0.45. A failed negotiation is not remembered.
//
//   - v0.0.38 (Slurm 21.08–23.02, the default; what our 22.05 test cluster
//     serves). Job submission goes through sbatch's option parser inside
//     slurmrestd, so the request keys are sbatch's long options: the
//     environment is a JSON object of strings, GPUs are requested with
//     "gres": "gpu:N" ("tres_per_node" is an unknown key there), the time
//     limit is a plain number of minutes, "nodes" must be a number (the
//     [min, max] array of the OpenAPI document is silently ignored by 22.05)
//     and "tasks" must be sent explicitly (sbatch computes it client side).
//     Job listings carry job_state as one string, exit_code as the raw
//     wait(2) status (768 for "exit 3") and times as Unix seconds.
//   - v0.0.39 and v0.0.40 up to v0.0.45 (Slurm 23.02–26.05, data_parser
//     plugins; what Soperator clusters run). The script goes into job.script,
//     the environment is an array of "NAME=value" strings, GPUs are
//     "tres_per_node": "gres/gpu:N" and the time limit is a
//     {"set","infinite","number"} structure. Listings carry job_state as an
//     array (base state first, then flags), exit_code as an object with
//     status, return_code and signal, and times as number structures.
//
// Listings are parsed by one defensive parser, slurmjson.ParseJobs (shared
// with slurmcli, whose squeue --json prints the same documents), that
// accepts every shape above, so a Backend configured for the wrong version
// still reads jobs correctly; only submission depends on the version.
//
// Authentication is slurmrestd's rest_auth/jwt: every request carries
// X-SLURM-USER-NAME and X-SLURM-USER-TOKEN. The token is either fixed
// (Config.Token) or minted by the Backend itself from Slurm's HS256 key
// (Config.JWTKeyFile), with the claims Slurm's auth/jwt plugin reads: iat,
// exp and sun (the Slurm user name). Minted tokens are renewed well before
// they expire.
//
// Nodes (scheduler.NodeBackend) come from GET /slurm/{version}/nodes, read
// by ParseNodes (which also reads scontrol --json and sinfo --json). Drain
// and Resume POST {"state":["DRAIN"],"reason":...} or {"state":["RESUME"]} to
// /slurm/{version}/node/{name}, which exists from v0.0.40 (Slurm 23.11);
// v0.0.38 and v0.0.39 Backends return an error wrapping
// scheduler.ErrNodeUnsupported without sending anything (22.05's v0.0.38
// answers that POST with HTTP 405).
//
// Errors wrap exactly one of scheduler.ErrUnavailable (slurmrestd or
// slurmctld could not be reached, timed out, answered 5xx without a Slurm
// verdict, or could not produce a listing), scheduler.ErrRejected (Slurm
// refused the request on its merits, with a Slurm error number such as 2000
// "Invalid partition name specified"; the text is kept, see APIError),
// ErrUnauthorized (HTTP 401/403 or an auth error number: the credentials
// were refused) or ErrNotServed (HTTP 404 without a Slurm error number:
// slurmrestd does not serve the API version or path). The last two wrap
// scheduler.ErrMisconfigured: retrying will not help until the
// configuration changes, and neither ever reads as a refused job. Slurm's
// own error numbers decide the class, not the HTTP status alone:
// slurmrestd 22.05 answers every Slurm error, a bad partition included,
// with HTTP 500. It also answers a refused JWT not with 401 but like an
// unreachable slurmctld (error -1 on listings, 5005 on submit and cancel),
// so those stay ErrUnavailable, with a hint in the message; Backend.Check
// tells the two apart and is meant for startup. An expired static token is
// caught before it is sent. A listing (GET) whose "errors" is not empty is
// ErrUnavailable, never the empty list printed next to it. A cancel is
// judged by the per-job "status" array too: slurmrestd 24.11 and later
// answer DELETE /job/{id} with HTTP 200 and empty "errors" whatever Slurm
// said, and put the verdict ({"error":{"code":2017,...}}) there. Answers
// that cannot be understood at all (a 200 that is not JSON, a listing
// without "jobs", a submit answer without job_id) wrap none of these: they
// mean a version mismatch or something in the way.
package slurmrest
