package store

// Event reasons that more than one package reads: the reconciler records
// them, the API server selects them.
const (
	// ReasonModelDownload: the model a deployment pins was made ready for
	// an instance (the storage-initializer step, in Azure's words).
	ReasonModelDownload = "ModelDownload"
	// ReasonCodeDownload: the code snapshot was made ready for an instance.
	ReasonCodeDownload = "CodeDownload"
	// ReasonDownloadFailed: the model or code could not be made ready.
	ReasonDownloadFailed = "DownloadFailed"
)

// StorageInitializerReasons are the reasons of the step that fetches and
// materialises a deployment's model and code before its server starts;
// `get-logs --container storage-initializer` shows these events.
var StorageInitializerReasons = []string{ReasonModelDownload, ReasonCodeDownload, ReasonDownloadFailed}
