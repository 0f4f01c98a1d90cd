package lb

import (
	"reflect"
	"testing"
	"time"
)

var timeType = reflect.TypeOf(time.Time{})

// TestBackendEqualCoversEveryField changes each field of Backend in turn,
// down into Rules and HealthCheck, and checks that Equal notices: a field
// added to any of them without a comparison in Equal fails here.
func TestBackendEqualCoversEveryField(t *testing.T) {
	var base Backend
	if !base.Equal(base) {
		t.Fatal("the zero Backend is not Equal to itself")
	}
	leaves := 0
	var visit func(path string, typ reflect.Type, index []int)
	visit = func(path string, typ reflect.Type, index []int) {
		if typ.Kind() == reflect.Struct && typ != timeType {
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				visit(path+"."+f.Name, f.Type, append(index[:len(index):len(index)], i))
			}
			return
		}
		leaves++
		changed := base
		setNonZero(t, path, reflect.ValueOf(&changed).Elem().FieldByIndex(index))
		if base.Equal(changed) || changed.Equal(base) {
			t.Errorf("Equal misses %s", path)
		}
		if !changed.Equal(changed) {
			t.Errorf("with %s set, a Backend is not Equal to itself", path)
		}
	}
	visit("Backend", reflect.TypeOf(base), nil)
	if leaves < 15 {
		t.Fatalf("visited %d fields, want at least the 15 Backend had when this test was written", leaves)
	}
}

// setNonZero sets v, a field that is not a struct (or is a time.Time), to a
// value other than its zero value.
func setNonZero(t *testing.T, path string, v reflect.Value) {
	t.Helper()
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Unix(1, 0)))
	case v.Kind() == reflect.String:
		v.SetString("x")
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.CanInt():
		v.SetInt(7)
	case v.Kind() == reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		setNonZero(t, path+"[0]", s.Index(0))
		v.Set(s)
	default:
		t.Fatalf("%s: no non-zero value for a %s; extend setNonZero (and Equal)", path, v.Type())
	}
}

func TestBackendEqualSemantics(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	a := Backend{ID: "c1", Started: at}
	b := Backend{ID: "c1", Started: at.In(time.FixedZone("X", 3600)), Rules: Rules{Hosts: []string{}}}
	if !a.Equal(b) {
		t.Error("the same instant in another zone, or nil and empty Hosts, made Backends unequal")
	}
}
