package inventory_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestESTPoolLevels: levels are grouped per pool and follow claims.
func TestESTPoolLevels(t *testing.T) {
	t.Parallel()
	for name, st := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if got, err := st.ESTPoolLevels(ctx); err != nil || len(got) != 0 {
				t.Fatalf("empty store: %v, %v", got, err)
			}
			put := func(label, kt string, n int) {
				keys := make([][]byte, n)
				for i := range keys {
					keys[i] = []byte{byte(i)}
				}
				if err := st.PutESTPoolKeys(ctx, label, kt, keys); err != nil {
					t.Fatal(err)
				}
			}
			put("iot", "RSA-2048", 3)
			put("iot", "EC-P256", 2)
			put("cams", "EC-P256", 1)
			if _, err := st.ClaimESTPoolKey(ctx, "iot", "RSA-2048"); err != nil {
				t.Fatal(err)
			}
			want := []inventory.PoolLevel{{"cams", "EC-P256", 1}, {"iot", "EC-P256", 2}, {"iot", "RSA-2048", 2}}
			got, err := st.ESTPoolLevels(ctx)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("ESTPoolLevels = %v, %v; want %v", got, err, want)
			}
		})
	}
}
