package compare

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		live, shadow  string
		comparable    bool
		preds, agreed int
		classes       [][2]string
		deltas        []float64
		diff          string
	}{
		{"plumber classes, one flip", Config{}, `{"species":["setosa","virginica"]}`, `{"species":["setosa","versicolor"]}`,
			true, 2, 1, [][2]string{{"setosa", "setosa"}, {"virginica", "versicolor"}}, nil, `[1]: "virginica" vs "versicolor"`},
		{"numbers within tolerance", Config{Tolerance: 0.01}, `[0.50, 1.0]`, `[0.505, 1.5]`,
			true, 2, 1, nil, []float64{0.0050000000000000044, 0.5}, `[1]: 1.0 vs 1.5`},
		{"relative tolerance", Config{RelativeTolerance: 0.1}, `[100]`, `[109]`, true, 1, 1, nil, []float64{9}, ""},
		{"exact when tolerance is zero", Config{}, `[1]`, `[1.0000001]`, true, 1, 0, nil, []float64{1.0000000005838672e-07}, `[0]: 1 vs 1.0000001`},
		{"objects member by member", Config{Path: "$.predictions"}, `{"predictions":[{"label":"a","p":0.9}],"model":"x"}`,
			`{"predictions":[{"label":"a","p":0.8}],"model":"y"}`, true, 1, 0, nil, []float64{0.09999999999999998}, `[0].p: 0.9 vs 0.8`},
		{"path of several nodes", Config{Path: "$.rows[*].label"}, `{"rows":[{"label":true},{"label":false}]}`,
			`{"rows":[{"label":true},{"label":true}]}`, true, 2, 1, [][2]string{{"true", "true"}, {"false", "true"}}, nil, `[1]: false vs true`},
		{"lengths differ", Config{}, `[1,2,3]`, `[1,2]`, true, 3, 2, nil, []float64{0, 0}, "3 predictions live, 2 shadow"},
		{"one object is one prediction", Config{}, `{"model":"a","sum":3}`, `{"model":"b","sum":3}`, true, 1, 0, nil, []float64{0}, `[0].model: "a" vs "b"`},
		{"shadow not JSON", Config{}, `[1]`, `<html>`, false, 0, 0, nil, nil, ""},
		{"path selects nothing", Config{Path: "$.nope"}, `{"a":1}`, `{"a":1}`, false, 0, 0, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			o := c.Compare([]byte(tt.live), []byte(tt.shadow))
			if o.Comparable != tt.comparable || o.Predictions != tt.preds || o.Agreed != tt.agreed || o.Diff != tt.diff {
				t.Errorf("got comparable %v, %d/%d agreed, diff %q (%s); want %v, %d/%d, %q",
					o.Comparable, o.Agreed, o.Predictions, o.Diff, o.Reason, tt.comparable, tt.agreed, tt.preds, tt.diff)
			}
			if diff := cmp.Diff(tt.classes, o.Classes); diff != "" {
				t.Errorf("classes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.deltas, o.Deltas); diff != "" {
				t.Errorf("deltas (-want +got):\n%s", diff)
			}
		})
	}
}
