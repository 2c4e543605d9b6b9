package gateway

import (
	"log/slog"
	"net/http"
	"time"
)

// finish releases nothing (serve already did) but records the request:
// metrics and one access-log line. It runs deferred, so it also sees a
// response whose copy was aborted (the panic goes on after it).
func (g *Gateway) finish(st *reqState) {
	end := time.Now()
	status := st.w.status
	if st.err != nil {
		if r := replyFor(st.err); r.status == statusClientClosedRequest {
			status = r.status
		}
	}
	if status == 0 {
		if st.returned {
			status = http.StatusOK // the handler wrote nothing at all
		} else {
			status = statusClientClosedRequest // aborted before any header
		}
	}
	elapsed := end.Sub(st.start)

	if st.t != nil {
		pm := st.t.pool.m
		pm.requests.get(status, st.modelStatus).Inc()
		pm.duration.Observe(elapsed.Seconds())
		if st.figs != nil || st.pair != nil || st.capture != nil {
			g.finishSafety(st, status, elapsed)
		}
	} else {
		endpoint := ""
		if st.rt != nil {
			endpoint = st.rt.name // only known endpoints; a client cannot grow the label set
		}
		g.metrics.requests.WithLabelValues(endpoint, "", codeLabel(status), "").Inc()
	}

	if g.alog != nil {
		var e accessEntry
		st.entry(&e, status, end)
		g.alog.write(&e)
		return
	}
	if g.log == nil {
		return
	}
	ctx := st.in.Context()
	if !g.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	var e accessEntry
	st.entry(&e, status, end)
	g.log.LogAttrs(ctx, slog.LevelInfo, accessMessage, e.attrs()...)
}

// accessMessage is the message of every access-log line.
const accessMessage = "scoring request"

// accessEntry is one access-log line: the fields of Azure's
// AmlOnlineEndpointTrafficLog, plus InstanceName, ModelName/ModelVersion and
// Error (what went wrong, for the operator; the client saw only the short
// reason). The Authorization header and the bodies are never logged.
type accessEntry struct {
	Time                                                 time.Time
	Method, Path, EndpointName, DeploymentName, Instance string
	Protocol                                             string
	ResponseCode                                         int
	ResponseCodeReason                                   string
	ModelStatusCode                                      int
	ModelStatusReason                                    string
	RequestPayloadSize, ResponsePayloadSize              int64
	UserAgent, XRequestID, XMSClientRequestID            string
	TotalMs, RequestMs, ResponseMs                       float64
	ModelName, ModelVersion                              string // logged when ModelName is set
	Error                                                error  // logged when set
	Aborted                                              bool   // logged when true
}

// entry fills e for this request.
func (st *reqState) entry(e *accessEntry, status int, end time.Time) {
	r := st.in
	e.Time = end
	e.Method, e.Path, e.Protocol = r.Method, r.URL.Path, r.Proto
	if st.rt != nil {
		e.EndpointName = st.rt.name
	}
	if st.t != nil {
		e.DeploymentName = st.t.name
		e.ModelName, e.ModelVersion = st.t.modelName, st.t.modelVersion
	}
	if st.inst != nil {
		e.Instance = st.inst.name
	}
	if st.clientID != nil {
		e.XMSClientRequestID = st.clientID[0]
	}
	e.XRequestID = st.requestID[0]
	e.ResponseCode, e.ResponseCodeReason = status, statusReason(status)
	e.ModelStatusCode, e.ModelStatusReason = st.modelStatus, st.modelReason
	e.RequestPayloadSize, e.ResponsePayloadSize = st.body.size(), st.w.bytes
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		e.UserAgent = cutUserAgent(ua[0])
	}
	reqEnd := st.start
	if ns := st.body.endNs.Load(); ns != 0 {
		reqEnd = time.Unix(0, ns)
	}
	respStart := st.firstByte
	if respStart.IsZero() {
		respStart = end
	}
	e.TotalMs, e.RequestMs, e.ResponseMs = ms(end.Sub(st.start)), ms(reqEnd.Sub(st.start)), ms(respStart.Sub(st.start))
	e.Error = st.err
	e.Aborted = !st.returned
}

// attrs are e's fields for a slog.Logger, in the order the encoders write
// them.
func (e *accessEntry) attrs() []slog.Attr {
	s := &attrSink{a: make([]slog.Attr, 0, 22)}
	e.fields(s)
	return s.a
}

// attrSink collects fields as slog attributes.
type attrSink struct{ a []slog.Attr }

func (s *attrSink) str(key, v string)           { s.a = append(s.a, slog.String(key, v)) }
func (s *attrSink) num(key string, v int64)     { s.a = append(s.a, slog.Int64(key, v)) }
func (s *attrSink) float(key string, v float64) { s.a = append(s.a, slog.Float64(key, v)) }
func (s *attrSink) flag(key string, v bool)     { s.a = append(s.a, slog.Bool(key, v)) }

func statusReason(code int) string {
	if code == statusClientClosedRequest {
		return "Client Closed Request"
	}
	return http.StatusText(code)
}

// ms is d in milliseconds with microsecond resolution.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
