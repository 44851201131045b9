-- A DAG's definition is kept as its JSON text, zlib-compressed, instead of jsonb: jsonb
-- caps a value at 256 MB, about a million tasks, and nothing queries inside it. Rows
-- recorded before keep their definition as plain JSON text (readers tell the two apart
-- by the first byte: '{' for JSON). Already compressed, it is stored out of line as is.
ALTER TABLE dag_versions
    ALTER COLUMN definition TYPE bytea USING convert_to(definition::text, 'UTF8');
ALTER TABLE dag_versions ALTER COLUMN definition SET STORAGE EXTERNAL;
