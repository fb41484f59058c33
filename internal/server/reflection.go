package server

import (
	_ "embed" // the descriptor set below
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// reflectionSet is `buf build -o internal/server/reflection.binpb` (make
// generate): the protos with their source info. Generated Go code drops the
// comments, so reflection served from it would make `grpcurl describe`
// show bare names; served from this set it shows each comment.
//
//go:embed reflection.binpb
var reflectionSet []byte

// registerReflection serves server reflection (v1 and v1alpha) from the
// embedded descriptor set, falling back to the linked-in descriptors for
// files the set lacks (grpc.health.v1, reflection itself).
func registerReflection(srv *grpc.Server) error {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(reflectionSet, &set); err != nil {
		return fmt.Errorf("embedded descriptor set: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return fmt.Errorf("embedded descriptor set: %w", err)
	}
	opts := reflection.ServerOptions{
		Services:           srv,
		DescriptorResolver: fallbackResolver{files, protoregistry.GlobalFiles},
		ExtensionResolver:  protoregistry.GlobalTypes,
	}
	reflectionv1.RegisterServerReflectionServer(srv, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(srv, reflection.NewServer(opts))
	return nil
}

// fallbackResolver asks first, then second.
type fallbackResolver struct{ first, second *protoregistry.Files }

func (r fallbackResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.first.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return r.second.FindFileByPath(path)
}

func (r fallbackResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.first.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return r.second.FindDescriptorByName(name)
}
