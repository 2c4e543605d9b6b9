package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/plumbline/plumbline/internal/contract"
)

// inputContractFlags reads model create's --prototype / --input-schema into
// an input contract (nil when neither is given).
func inputContractFlags(prototype, schema, extra, allNA string) (json.RawMessage, error) {
	if prototype == "" && schema == "" {
		if extra != "" || allNA != "" {
			return nil, usageErrorf("--extra-columns and --all-na-columns go with --prototype")
		}
		return nil, nil
	}
	if prototype != "" && schema != "" {
		return nil, usageErrorf("give --prototype or --input-schema, not both")
	}
	c := &contract.Contract{ExtraColumns: extra, AllNAColumns: allNA}
	if prototype != "" {
		b, err := os.ReadFile(prototype)
		if err != nil {
			return nil, err
		}
		cols, err := contract.ParsePrototype(b)
		if err != nil {
			return nil, fmt.Errorf("--prototype %s: %w", prototype, err)
		}
		c.Columns = cols
	} else {
		b, err := os.ReadFile(schema)
		if err != nil {
			return nil, err
		}
		c.JSONSchema = b
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s%s: %w", prototype, schema, err)
	}
	return json.Marshal(c)
}
