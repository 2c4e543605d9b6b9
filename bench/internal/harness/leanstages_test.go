package harness

import (
	"strings"
	"testing"
)

func TestParseServerTiming(t *testing.T) {
	got := parseServerTiming("sup-read;dur=0.012, r-handler;dur=1.750,bad, r-parse;dur=x")
	if len(got) != 2 || got["sup-read"] != 0.012 || got["r-handler"] != 1.75 {
		t.Errorf("parseServerTiming = %v, want sup-read 0.012 and r-handler 1.75 only", got)
	}
}

// Stacks as a lean worker's Rprof file has them (innermost first).
const rprofSample = `GC profiling: sample.interval=500
"predict.randomForest" "stats::predict" "scoring_function" "unique.default" "I" "<Anonymous>" "do.call" "handle" "doTryCatch" "tryCatchOne" "tryCatchList" "tryCatch" "route" "route_request" "call_router" "settle" "doTryCatch" "worker"
"<GC>" "as.data.frame" "<Anonymous>" "do.call" "handle" "doTryCatch" "route" "route_request" "call_router" "worker"
"stri_detect_fixed" "cleanup_content_type" "parser_picker" "pick_parser" "parse_request_body" "handle" "doTryCatch" "route" "call_router" "worker"
"getRelevantArgs" "do.call" "handle" "doTryCatch" "route" "call_router" "worker"
"toJSON" "serialize_fn" "ser" "doTryCatch" "tryCatch" "route_request" "call_router" "worker"
"new_response" "route_request" "withCallingHandlers" "plumbline_with_request_log" "call_router" "worker"
"handle" "doTryCatch" "route" "call_router" "worker"
"list2env" "make_req" "doTryCatch" "worker"
"charToRaw" "encode_response" "doTryCatch" "worker"
"readBin" "read_full" "doTryCatch" "worker"
"writeBin" "doTryCatch" "worker"
"worker"
`

func TestClassifyRprof(t *testing.T) {
	counts, n, err := classifyRprof(strings.NewReader(rprofSample))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{rpHandler: 2, rpParse: 2, rpSer: 1, rpRoute: 2, rpRequest: 1, rpEncode: 1, rpRead: 1, rpWrite: 1, rpOther: 1}
	if n != 12 {
		t.Errorf("%d samples, want 12", n)
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s: %d samples, want %d (all: %v)", k, counts[k], v, counts)
		}
	}
}
