-- A model version's input contract (model create --prototype / --input-schema):
-- JSON of contract.Contract, NULL when the model has none.
ALTER TABLE models ADD COLUMN contract TEXT;
