package gateway

// Provenance headers: every scoring response that reached a deployment says
// which deployment answered (Azure's azureml-model-deployment and
// Plumbline-Deployment) and, once an instance took the request, which model
// version and artifact digest that instance serves. During a rolling update
// an instance of the previous version names its own model. The values are
// built once per snapshot: setting them costs no allocation per request.

const (
	hdrPlumblineDeployment  = "Plumbline-Deployment"
	hdrPlumblineModel       = "Plumbline-Model"
	hdrPlumblineModelDigest = "Plumbline-Model-Digest"
)

// provenance are the header values, nil when unknown.
type provenance struct {
	model  []string // "name:version"
	digest []string // "sha256:…"
}

func newProvenance(name, version, digest string) provenance {
	var p provenance
	if name != "" {
		v := name
		if version != "" {
			v += ":" + version
		}
		p.model = []string{v}
	}
	if digest != "" {
		p.digest = []string{digest}
	}
	return p
}

func deploymentProvenance(_ string, d *Deployment) provenance {
	return newProvenance(d.ModelName, d.ModelVersion, d.ModelDigest)
}

// instanceProvenance is nil when the instance serves its deployment's model.
func instanceProvenance(in Instance) *provenance {
	if in.ModelName == "" && in.ModelVersion == "" && in.ModelDigest == "" {
		return nil
	}
	p := newProvenance(in.ModelName, in.ModelVersion, in.ModelDigest)
	return &p
}

// setProvenance writes the model headers of the instance that took the
// request.
func (st *reqState) setProvenance(inst *instance) {
	p := &st.t.prov
	if inst.prov != nil {
		p = inst.prov
	}
	h := st.w.Header()
	if p.model != nil {
		h[hdrPlumblineModel] = p.model
	}
	if p.digest != nil {
		h[hdrPlumblineModelDigest] = p.digest
	}
}
