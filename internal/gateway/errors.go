package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Errors the request path branches on. respond maps each to exactly one HTTP
// status; nothing else in the package chooses an error status.
var (
	errNotScoringPath   = errors.New("not a scoring URI")
	errUnknownEndpoint  = errors.New("unknown endpoint")
	errNoPositiveWeight = errors.New("no deployment with positive weight")
	errNoOpenAPI        = errors.New("deployment serves no OpenAPI document")
	errQueueFull        = errors.New("too many pending requests")
	errQueueWait        = errors.New("max queue wait exceeded")
	errNoInstance       = errors.New("no ready instance")
	errRequestTimeout   = errors.New("request timeout")
	errBodyTooLarge     = errors.New("request body too large")
	errBadBody          = errors.New("reading the request body failed")
	errUpstream         = errors.New("upstream connection failed")
	errClientGone       = errors.New("client canceled the request")
)

// unknownDeploymentError is the azureml-model-deployment header naming a
// deployment the endpoint does not have.
type unknownDeploymentError struct{ name string }

func (e *unknownDeploymentError) Error() string { return "unknown deployment " + e.name }

// maxEchoedName bounds how much of a client-chosen name an error echoes.
const maxEchoedName = 64

func newUnknownDeploymentError(name string) *unknownDeploymentError {
	if len(name) > maxEchoedName {
		name = name[:maxEchoedName]
	}
	return &unknownDeploymentError{name: name}
}

// authError is a 401. reason is what the client is told; it helps no attacker
// ("missing bearer token", "invalid credentials", "token expired"). err, if
// set, is the verifier's error, for the server's own log only.
type authError struct {
	reason string
	err    error
}

func (e *authError) Error() string {
	if e.err != nil {
		return "unauthorized: " + e.reason + ": " + e.err.Error()
	}
	return "unauthorized: " + e.reason
}

func (e *authError) Unwrap() error { return e.err }

// statusClientClosedRequest is nginx's 499: the client went away before the
// answer. It is logged and counted, never written.
const statusClientClosedRequest = 499

// errorReply is what the client sees for an error.
type errorReply struct {
	status     int
	code       string // the "code" member of the JSON body
	message    string
	retryAfter bool
	body       []byte // the whole body, when set (an input contract's 422)
}

// replyFor maps an error from the request path to its reply. It is the one
// place that chooses an error status.
func replyFor(err error) errorReply {
	var ae *authError
	var ude *unknownDeploymentError
	var ce *contractError
	switch {
	case errors.As(err, &ce):
		return errorReply{status: http.StatusUnprocessableEntity, code: "InputContractViolation", body: ce.body}
	case errors.Is(err, errNoContract):
		return errorReply{status: http.StatusNotFound, code: "NotFound",
			message: "The deployment has no input contract (a vetiver pin's prototype, model create --prototype, or plumbline.input in the deployment)."}
	case errors.As(err, &ae):
		return errorReply{status: http.StatusUnauthorized, code: "Unauthorized", message: ae.reason}
	case errors.As(err, &ude):
		return errorReply{status: http.StatusNotFound, code: "NotFound",
			message: "The endpoint doesn't have a deployment named '" + ude.name + "'."}
	case errors.Is(err, errUnknownEndpoint):
		return errorReply{status: http.StatusNotFound, code: "NotFound", message: "Endpoint not found."}
	case errors.Is(err, errNotScoringPath):
		return errorReply{status: http.StatusNotFound, code: "NotFound",
			message: "Not a scoring URI; use /endpoints/<endpoint>/score or <endpoint>.<domain>/score."}
	case errors.Is(err, errNoPositiveWeight):
		return errorReply{status: http.StatusNotFound, code: "NotFound",
			message: "The endpoint doesn't have any valid deployment with positive weight."}
	case errors.Is(err, errNoOpenAPI):
		return errorReply{status: http.StatusNotFound, code: "NotFound",
			message: "The deployment does not serve an OpenAPI document."}
	case errors.Is(err, errQueueFull), errors.Is(err, errQueueWait):
		return errorReply{status: http.StatusTooManyRequests, code: "TooManyRequests",
			message: "Too many pending requests", retryAfter: true}
	case errors.Is(err, errNoInstance):
		return errorReply{status: http.StatusServiceUnavailable, code: "ServiceUnavailable",
			message: "The deployment has no ready instance.", retryAfter: true}
	case errors.Is(err, errRequestTimeout):
		return errorReply{status: http.StatusRequestTimeout, code: "RequestTimeout",
			message: "The model took longer than the deployment's request timeout."}
	case errors.Is(err, errBodyTooSlow):
		return errorReply{status: http.StatusRequestTimeout, code: "RequestTimeout",
			message: "The request body arrived more slowly than the server accepts; send it faster, or in one piece."}
	case errors.Is(err, errBodyTooLarge):
		return errorReply{status: http.StatusRequestEntityTooLarge, code: "PayloadTooLarge",
			message: "The request body is larger than the server accepts."}
	case errors.Is(err, errBadBody):
		return errorReply{status: http.StatusBadRequest, code: "BadRequest",
			message: "Reading the request body failed."}
	case errors.Is(err, errClientGone):
		return errorReply{status: statusClientClosedRequest}
	default: // errUpstream and anything unforeseen
		return errorReply{status: http.StatusBadGateway, code: "BadGateway",
			message: "The model server could not be reached."}
	}
}

// Canonical header keys, spelled once so the request path never canonicalises.
const (
	hdrContentType          = "Content-Type"
	hdrRetryAfter           = "Retry-After"
	hdrWWWAuthenticate      = "Www-Authenticate"
	hdrAuthorization        = "Authorization"
	hdrExpect               = "Expect"
	hdrRequestID            = "X-Request-Id"
	hdrClientRequestID      = "X-Ms-Client-Request-Id"
	hdrModelDeployment      = "Azureml-Model-Deployment"
	hdrModelErrorStatusCode = "Ms-Azureml-Model-Error-Statuscode"
	hdrModelErrorReason     = "Ms-Azureml-Model-Error-Reason"
	hdrServerTiming         = "Server-Timing"
)

var (
	valJSON       = []string{"application/json"}
	valRetryAfter = []string{"1"}
	valBearer     = []string{`Bearer realm="plumbline"`}
)

// writeError writes reply as `{"error":{"code":...,"message":...}}`.
func writeError(w http.ResponseWriter, r errorReply) {
	if r.status == statusClientClosedRequest {
		return // nobody is listening
	}
	h := w.Header()
	h[hdrContentType] = valJSON
	if r.retryAfter {
		h[hdrRetryAfter] = valRetryAfter
	}
	if r.status == http.StatusUnauthorized {
		h[hdrWWWAuthenticate] = valBearer
	}
	w.WriteHeader(r.status)
	if r.body != nil {
		_, _ = w.Write(r.body)
		return
	}
	_, _ = w.Write(errorBody(r.code, r.message))
}

func errorBody(code, message string) []byte {
	type inner struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, err := json.Marshal(struct {
		Error inner `json:"error"`
	}{inner{code, message}})
	if err != nil { // cannot happen for two strings
		return []byte(`{"error":{"code":"InternalServerError"}}`)
	}
	return b
}
