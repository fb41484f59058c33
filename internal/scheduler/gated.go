package scheduler

import "context"

// GatedSubmitter is implemented by backends that can start a submission
// before the caller is ready for the job to exist, and hold the job back
// until gate says it may go: the CLI backend starts sbatch at once (about
// half of its run is spent before it reads the script) and sends the script
// only after gate returned nil. Callers use SubmitAfter, which also serves
// backends without it.
type GatedSubmitter interface {
	// SubmitGated submits job as Backend.Submit does, under the contract
	// of SubmitAfter.
	SubmitGated(ctx context.Context, job JobSpec, gate func() error) (JobID string, err error)
}

// SubmitAfter submits job to b once gate allows it, overlapping whatever
// gate does with the backend's own start-up where b is a GatedSubmitter,
// and otherwise calling gate and then b.Submit. Contract, for both:
//
//   - gate is called exactly once, before SubmitAfter returns (so it may
//     set the caller's variables without locking);
//   - gate is called before any byte of the job reaches Slurm: while gate
//     runs, and after it fails, no job exists and none can come to exist
//     from this call;
//   - if gate returns an error, no job is created and the error returned
//     wraps gate's (errors.Is finds it). To tell "gate failed" from "Slurm
//     failed", the caller records gate's outcome in the closure: an error
//     from SubmitAfter after gate returned nil is Slurm's, to be read as
//     Backend.Submit's errors are.
func SubmitAfter(ctx context.Context, b Backend, job JobSpec, gate func() error) (string, error) {
	if g, ok := b.(GatedSubmitter); ok {
		return g.SubmitGated(ctx, job, gate)
	}
	if err := gate(); err != nil {
		return "", err
	}
	return b.Submit(ctx, job)
}
