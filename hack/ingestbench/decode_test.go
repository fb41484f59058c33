package main

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sopilot/sopilot/pkg/agentpb"
)

// BenchmarkDecodeBatch is the controller's protobuf decode of one realistic
// batch, and of the same batch without its InfiniBand counter maps: the
// difference is what map<string, uint64> counters cost per batch.
func BenchmarkDecodeBatch(b *testing.B) {
	full := makeBatch("bench-00001", 42, time.Unix(1700000000, 0))
	noMaps := proto.Clone(full).(*agentpb.Batch)
	for _, p := range noMaps.IbSamples {
		p.Counters = nil
	}
	for _, c := range []struct {
		name string
		msg  *agentpb.Batch
	}{{"full", full}, {"without-ib-counters", noMaps}} {
		wire, err := proto.Marshal(&agentpb.ConnectRequest{Message: &agentpb.ConnectRequest_Batch{Batch: c.msg}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				var m agentpb.ConnectRequest
				if err := proto.Unmarshal(wire, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
