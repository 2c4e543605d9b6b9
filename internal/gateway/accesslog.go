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
	} else {
		endpoint := ""
		if st.rt != nil {
			endpoint = st.rt.name // only known endpoints; a client cannot grow the label set
		}
		g.metrics.requests.WithLabelValues(endpoint, "", codeLabel(status), "").Inc()
	}

	if g.log == nil {
		return
	}
	ctx := st.in.Context()
	if !g.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "scoring request", st.logAttrs(status, end)...)
}

// logAttrs are the fields of Azure's AmlOnlineEndpointTrafficLog, plus
// InstanceName, ModelName/ModelVersion and Error (what went wrong, for the
// operator; the client saw only the short reason). The Authorization header
// and the bodies are never logged.
func (st *reqState) logAttrs(status int, end time.Time) []slog.Attr {
	r := st.in
	endpoint, deployment, instance := "", "", ""
	if st.rt != nil {
		endpoint = st.rt.name
	}
	if st.t != nil {
		deployment = st.t.name
	}
	if st.inst != nil {
		instance = st.inst.name
	}
	clientID := ""
	if st.clientID != nil {
		clientID = st.clientID[0]
	}
	reqEnd := st.start
	if ns := st.body.endNs.Load(); ns != 0 {
		reqEnd = time.Unix(0, ns)
	}
	respStart := st.firstByte
	if respStart.IsZero() {
		respStart = end
	}
	attrs := []slog.Attr{
		slog.String("Method", r.Method),
		slog.String("Path", r.URL.Path),
		slog.String("EndpointName", endpoint),
		slog.String("DeploymentName", deployment),
		slog.String("InstanceName", instance),
		slog.String("Protocol", r.Proto),
		slog.Int("ResponseCode", status),
		slog.String("ResponseCodeReason", statusReason(status)),
		slog.Int("ModelStatusCode", st.modelStatus),
		slog.String("ModelStatusReason", st.modelReason),
		slog.Int64("RequestPayloadSize", st.body.size()),
		slog.Int64("ResponsePayloadSize", st.w.bytes),
		slog.String("UserAgent", cutUserAgent(r.UserAgent())),
		slog.String("XRequestId", st.requestID[0]),
		slog.String("XMSClientRequestId", clientID),
		slog.Float64("TotalDurationMs", ms(end.Sub(st.start))),
		slog.Float64("RequestDurationMs", ms(reqEnd.Sub(st.start))),
		slog.Float64("ResponseDurationMs", ms(respStart.Sub(st.start))),
	}
	if st.t != nil && st.t.modelName != "" {
		attrs = append(attrs, slog.String("ModelName", st.t.modelName), slog.String("ModelVersion", st.t.modelVersion))
	}
	if st.err != nil {
		attrs = append(attrs, slog.String("Error", st.err.Error()))
	}
	if !st.returned {
		attrs = append(attrs, slog.Bool("Aborted", true))
	}
	return attrs
}

func statusReason(code int) string {
	if code == statusClientClosedRequest {
		return "Client Closed Request"
	}
	return http.StatusText(code)
}

// ms is d in milliseconds with microsecond resolution.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
