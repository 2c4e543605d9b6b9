package contract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/valyala/fastjson"
)

const irisPrototype = `{
  "sepal_length": {"type": "numeric", "example": null, "details": {}},
  "sepal_width": "numeric",
  "petal_length": "double",
  "petal_width": "numeric",
  "species": {"type": "factor", "details": {"levels": ["setosa", "versicolor", "virginica"]}}
}`

func iris(t *testing.T) *Checker {
	t.Helper()
	cols, err := ParsePrototype([]byte(irisPrototype))
	if err != nil {
		t.Fatal(err)
	}
	k, err := Compile(&Contract{Columns: cols})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParsePrototype(t *testing.T) {
	cols, err := ParsePrototype([]byte(irisPrototype))
	if err != nil {
		t.Fatal(err)
	}
	want := []Column{
		{Name: "sepal_length", Type: TypeNumeric}, {Name: "sepal_width", Type: TypeNumeric},
		{Name: "petal_length", Type: TypeNumeric}, {Name: "petal_width", Type: TypeNumeric},
		{Name: "species", Type: TypeFactor, Levels: []string{"setosa", "versicolor", "virginica"}},
	}
	if d := cmp.Diff(want, cols); d != "" {
		t.Errorf("columns (-want +got):\n%s", d)
	}
	c := &Contract{Columns: cols}
	var round map[string]any
	if err := json.Unmarshal(c.PrototypeJSON(), &round); err != nil {
		t.Fatalf("PrototypeJSON is not JSON: %v\n%s", err, c.PrototypeJSON())
	}
	again, err := ParsePrototype(c.PrototypeJSON())
	if err != nil || !cmp.Equal(again, cols) {
		t.Errorf("PrototypeJSON does not read back: %v %s", err, cmp.Diff(cols, again))
	}
}

func TestParsePrototypeErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"not an object", `[1]`, "a prototype is a JSON object"},
		{"unknown type", `{"x": "float128"}`, `prototype column x: unknown type "float128"`},
		{"factor without levels", `{"x": "factor"}`, "prototype column x: a factor needs its levels"},
		{"empty", `{}`, "the prototype has no columns"},
		{"not JSON", `{"x": `, "the prototype is not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePrototype([]byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v, want an ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}

// TestCheckShapes: every shape the built-in scorers read passes a valid
// request and names the offending field in a bad one.
func TestCheckShapes(t *testing.T) {
	k := iris(t)
	tests := []struct {
		name, body string
		want       []string // problem messages; nil means valid
	}{
		{"seed's columns", `{"sepal_length":[6.7],"sepal_width":[3.3],"petal_length":[5.7],"petal_width":[2.5],"species":["setosa"]}`, nil},
		{"scalars are one row", `{"sepal_length":6.7,"sepal_width":3.3,"petal_length":5.7,"petal_width":2.5,"species":"setosa"}`, nil},
		{"records", `[{"sepal_length":6.7,"sepal_width":3.3,"petal_length":5.7,"petal_width":2.5,"species":"virginica"}]`, nil},
		{"dataframe_records", `{"dataframe_records":[{"sepal_length":6.7,"sepal_width":3.3,"petal_length":5.7,"petal_width":2.5,"species":"virginica"}]}`, nil},
		{"dataframe_split", `{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length","petal_width","species"],"index":[0],"data":[[6.7,3.3,5.7,2.5,"setosa"]]}}`, nil},
		{"input_data split (Azure)", `{"input_data":{"columns":["sepal_length","sepal_width","petal_length","petal_width","species"],"data":[[6.7,3.3,5.7,2.5,"setosa"]]}}`, nil},
		{"inputs columns", `{"inputs":{"sepal_length":[6.7],"sepal_width":[3.3],"petal_length":[5.7],"petal_width":[2.5],"species":["setosa"]}}`, nil},
		{"instances records", `{"instances":[{"sepal_length":6.7,"sepal_width":3.3,"petal_length":5.7,"petal_width":2.5,"species":"setosa"}]}`, nil},
		{"some NA is fine", `{"sepal_length":[6.7,null],"sepal_width":[3.3,1],"petal_length":[5.7,1],"petal_width":[2.5,1],"species":["setosa","setosa"]}`, nil},

		{"missing column", `{"sepal_length":[6.7],"sepal_width":[3.3],"petal_length":[5.7],"species":["setosa"]}`,
			[]string{"missing column petal_width"}},
		{"not a number", `{"sepal_length":[6.7,1,"abc"],"sepal_width":[3.3,1,1],"petal_length":[5.7,1,1],"petal_width":[2.5,1,1],"species":["setosa","setosa","setosa"]}`,
			[]string{`sepal_length[2]: expected a number, got "abc"`}},
		{"bad level in records", `[{"sepal_length":6.7,"sepal_width":3.3,"petal_length":5.7,"petal_width":2.5,"species":"rose"}]`,
			[]string{`species[0]: "rose" is not one of the levels setosa, versicolor, virginica`}},
		{"extra column", `{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length","petal_width","species","colour"],"data":[[6.7,3.3,5.7,2.5,"setosa","red"]]}}`,
			[]string{"unexpected column colour: the input contract does not name it (columns: sepal_length, sepal_width, petal_length, petal_width, species); remove it, or set the contract's extra_columns to ignore"}},
		{"all NA", `{"sepal_length":[null,null],"sepal_width":[3.3,1],"petal_length":[5.7,1],"petal_width":[2.5,1],"species":["setosa","setosa"]}`,
			[]string{"sepal_length: every value is null (NA); the model cannot use an all-NA column: send values, or set the contract's all_na_columns to allow"}},
		{"ragged", `{"sepal_length":[6.7,1],"sepal_width":[3.3,1,2],"petal_length":[5.7],"petal_width":[2.5],"species":["setosa"]}`,
			[]string{"column sepal_length has 2 values, others have 3; every column needs one value per row"}},
		{"tensor", `{"inputs":[[1,2,3,4]]}`, []string{"inputs[0] must be a record (an object of column: value); unnamed rows (tensors) cannot be checked against columns"}},
		{"not JSON", `{"x":`, []string{"the request body is not JSON: cannot parse object: cannot find opening '\"\" for object key; unparsed tail: \"\""}},
	}
	var p fastjson.Parser
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, pr := range k.Check([]byte(tt.body), &p, nil) {
				got = append(got, pr.Message)
			}
			if tt.name == "not JSON" && len(got) == 1 && strings.HasPrefix(got[0], "the request body is not JSON") {
				return
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

func TestCheckPolicies(t *testing.T) {
	cols := []Column{{Name: "x", Type: TypeInteger}, {Name: "when", Type: TypeDate}, {Name: "ok", Type: TypeLogical}}
	k, err := Compile(&Contract{Columns: cols, ExtraColumns: Ignore, AllNAColumns: Allow})
	if err != nil {
		t.Fatal(err)
	}
	var p fastjson.Parser
	if got := k.Check([]byte(`[{"x":1,"when":"2024-02-29","ok":true,"extra":1},{"x":2,"when":null,"ok":false}]`), &p, nil); len(got) != 0 {
		t.Errorf("got %v, want no problems (extra ignored)", got)
	}
	if got := k.Check([]byte(`{"x":[null],"when":[null],"ok":[null]}`), &p, nil); len(got) != 0 {
		t.Errorf("got %v, want no problems (all-NA allowed)", got)
	}
	got := k.Check([]byte(`[{"x":1.5,"when":"29/02/2024","ok":"yes"}]`), &p, nil)
	want := []Problem{
		{Field: "x[0]", Message: "x[0]: expected a whole number, got 1.5"},
		{Field: "when[0]", Message: `when[0]: expected a date (YYYY-MM-DD), got "29/02/2024"`},
		{Field: "ok[0]", Message: `ok[0]: expected true or false, got "yes"`},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestCheckManyProblemsAreBounded(t *testing.T) {
	k, err := Compile(&Contract{Columns: []Column{{Name: "x", Type: TypeNumeric}}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`{"x":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"a"`)
	}
	b.WriteString(`]}`)
	var p fastjson.Parser
	got := k.Check([]byte(b.String()), &p, nil)
	if len(got) != MaxProblems || !strings.HasPrefix(got[len(got)-1].Message, "more than") {
		t.Errorf("got %d problems ending %q, want %d ending with a 'more than' note", len(got), got[len(got)-1].Message, MaxProblems)
	}
}

func TestCheckJSONSchema(t *testing.T) {
	schema := `{"type":"object","required":["x1","x2"],"properties":{"x1":{"type":"array","items":{"type":"number"}},"x2":{"type":"array"}}}`
	k, err := Compile(&Contract{JSONSchema: json.RawMessage(schema)})
	if err != nil {
		t.Fatal(err)
	}
	var p fastjson.Parser
	if got := k.Check([]byte(`{"x1":[1,2],"x2":[3,4]}`), &p, nil); len(got) != 0 {
		t.Errorf("valid body: got %v", got)
	}
	got := k.Check([]byte(`{"x1":[1,"two"]}`), &p, nil)
	var fields []string
	for _, g := range got {
		fields = append(fields, g.Field)
	}
	if !cmp.Equal(fields, []string{"", "/x1/1"}) && !cmp.Equal(fields, []string{"/x1/1", ""}) {
		t.Errorf("got problems %+v, want one at the body (x2 missing) and one at /x1/1", got)
	}
	if _, err := Compile(&Contract{JSONSchema: json.RawMessage(`{"type": 12}`)}); err == nil || !errors.Is(err, ErrInvalid) {
		t.Errorf("bad schema: got %v, want ErrInvalid", err)
	}
}

// TestCheckAllocs: a valid one-row request is checked without allocating
// once the parser is warm (the gateway reuses parsers).
func TestCheckAllocs(t *testing.T) {
	k := iris(t)
	body := []byte(`{"sepal_length":[6.7],"sepal_width":[3.3],"petal_length":[5.7],"petal_width":[2.5],"species":["setosa"]}`)
	var p fastjson.Parser
	buf := make([]Problem, 0, 4)
	k.Check(body, &p, buf)
	if n := testing.AllocsPerRun(100, func() {
		if got := k.Check(body, &p, buf[:0]); len(got) != 0 {
			t.Fatalf("problems: %v", got)
		}
	}); n > 0 {
		t.Errorf("a valid request allocated %.0f times per check, want 0", n)
	}
}

func TestInfer(t *testing.T) {
	cols, err := Infer([]byte(`{"model": "a", "x1": [1, 2], "ok": [true, null]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Column{{Name: "model", Type: TypeCharacter}, {Name: "x1", Type: TypeNumeric}, {Name: "ok", Type: TypeLogical}}
	if d := cmp.Diff(want, cols); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := Infer([]byte(`{"x": [null]}`)); err == nil || !strings.Contains(err.Error(), "no value to infer") {
		t.Errorf("all-null sample column: got %v", err)
	}
}

func TestMarshalProblems(t *testing.T) {
	b := MarshalProblems([]Problem{{Field: "petal_width", Message: "missing column petal_width"}})
	want := `{"error":{"code":"InputContractViolation","message":"the request does not match the deployment's input contract: missing column petal_width","details":[{"field":"petal_width","message":"missing column petal_width"}]}}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
}
