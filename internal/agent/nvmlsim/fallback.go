package nvmlsim

import (
	"reflect"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// The simulated types embed go-nvml's mocks for the hundreds of NVML
// methods the simulation does not model. The embedded fields use these
// unexported aliases so that only the nvml interface methods are promoted,
// not the mocks' XxxFunc fields or XxxCalls recorders.
type (
	nvmlInterface = nvml.Interface
	nvmlDevice    = nvml.Device
)

var returnType = reflect.TypeFor[nvml.Return]()

// fillUnset sets every nil XxxFunc field of a go-nvml mock struct (ptr is a
// pointer to it) to a function that returns zero values and, where the
// method returns an nvml.Return, what ret says. The mocks panic on unset
// functions; the simulation answers ERROR_NOT_SUPPORTED instead.
//
// The mocks record every call they receive, so only methods outside the
// simulated set (which the collector never calls) go through them.
func fillUnset(ptr any, ret func() nvml.Return) {
	v := reflect.ValueOf(ptr).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.Func || !strings.HasSuffix(f.Name, "Func") || !fv.IsNil() {
			continue
		}
		ft := f.Type
		fv.Set(reflect.MakeFunc(ft, func([]reflect.Value) []reflect.Value {
			return zeroResults(ft, ret())
		}))
	}
}

// zeroResults is the zero value of each result of ft, with the last
// nvml.Return result (if any) set to r.
func zeroResults(ft reflect.Type, r nvml.Return) []reflect.Value {
	out := make([]reflect.Value, ft.NumOut())
	for i := range out {
		out[i] = reflect.Zero(ft.Out(i))
	}
	if n := len(out); n > 0 && ft.Out(n-1) == returnType {
		out[n-1] = reflect.ValueOf(r)
	}
	return out
}

// forwardDeviceCalls makes the library-level forms of device methods
// (lib.DeviceGetUUID(d), lib.EventSetWait(set, ms), ...) call the method on
// their first argument, as the real library does, when the handle has a
// method of that name and shape. It must run before fillUnset.
func forwardDeviceCalls(m *mock.Interface) {
	v := reflect.ValueOf(m).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Func || !strings.HasSuffix(f.Name, "Func") || f.Type.NumIn() == 0 {
			continue
		}
		method := strings.TrimSuffix(f.Name, "Func")
		var prefix string
		switch f.Type.In(0) {
		case reflect.TypeFor[nvml.Device]():
			prefix = "Device"
		case reflect.TypeFor[nvml.EventSet]():
			prefix = "EventSet"
		default:
			continue
		}
		name, ok := strings.CutPrefix(method, prefix)
		if !ok {
			continue
		}
		iface := f.Type.In(0)
		im, ok := iface.MethodByName(name)
		if !ok || !sameShape(f.Type, im.Type) {
			continue
		}
		ft := f.Type
		v.Field(i).Set(reflect.MakeFunc(ft, func(args []reflect.Value) []reflect.Value {
			if args[0].IsNil() {
				return zeroResults(ft, nvml.ERROR_INVALID_ARGUMENT)
			}
			return args[0].MethodByName(name).Call(args[1:])
		}))
	}
}

// sameShape reports whether lib (whose first argument is the receiver) and
// method (an interface method type, without receiver) match.
func sameShape(lib, method reflect.Type) bool {
	if lib.NumIn() != method.NumIn()+1 || lib.NumOut() != method.NumOut() || lib.IsVariadic() != method.IsVariadic() {
		return false
	}
	for i := range method.NumIn() {
		if lib.In(i+1) != method.In(i) {
			return false
		}
	}
	for i := range method.NumOut() {
		if lib.Out(i) != method.Out(i) {
			return false
		}
	}
	return true
}
