-- A model version's stage (model create / update: Development, Production…),
-- free-form as Azure's; '' when none.
ALTER TABLE models ADD COLUMN stage TEXT NOT NULL DEFAULT '';
