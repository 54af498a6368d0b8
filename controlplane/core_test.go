package controlplane_test

import (
	"testing"

	"github.com/tollgate/tollgate/controlplane"
)

func TestCoreWithoutStorePanics(t *testing.T) {
	defer func() {
		if p := recover(); p != controlplane.ErrNoStore {
			t.Fatalf("recovered %v, want ErrNoStore", p)
		}
	}()
	controlplane.New(controlplane.Config{}, nil)
}
