//! `metadata/metadata_{i}.parquet`: clip-retrieval's table of what each embedding row is,
//! one row per row of `img_emb_{i}.npy`, in the same order.
//!
//! [`write_parquet`] writes the table clip-retrieval's pandas `to_parquet` would: columns
//! `image_path`, `caption`, then the sample's `.json` fields flattened as
//! `pandas.json_normalize` flattens them (`exif.Make`), one row group, snappy; the output is
//! a function of the rows alone (no time, no host). [`read_parquet`] reads `image_path` and
//! `caption` back (for `similar --index DIR`).

use crate::JobError;
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The two columns every metadata table opens with.
const IMAGE_PATH: &str = "image_path";
/// See [`IMAGE_PATH`].
const CAPTION: &str = "caption";

/// One row of a metadata table: what one embedding is of.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaRow {
    /// The image's path, or its sample key for a webdataset shard.
    pub image_path: String,
    /// Its caption (`.txt`), if any.
    pub caption: Option<String>,
    /// Its sample's `.json` object, if any (flattened into columns by [`write_parquet`]).
    pub json: Option<Map<String, Value>>,
}

/// Writes `rows` to `w` as one parquet file of one row group (none when `rows` is empty),
/// snappy-compressed, with the columns, in this order:
///
/// - `image_path`: Utf8, not null;
/// - `caption`: Utf8, nullable;
/// - every field of the rows' `.json` objects, flattened as `pandas.json_normalize` does
///   (nested objects become `a.b`; at each row the top-level non-object fields come first,
///   then the flattened objects; a later equal name replaces the earlier value), in
///   first-seen order over the rows. A flattened name equal to `image_path` or `caption` is
///   dropped (img2dataset's `.json` repeats the caption). The order within one object is
///   serde_json's `Map` order: sorted by key unless serde_json's `preserve_order` is on.
///
/// A json column's type is chosen over all its values (missing and `null` are null): all
/// booleans → Boolean; all integers within i64 → Int64; integers and floats (or integers
/// beyond i64) → Float64; all strings → Utf8; anything else (arrays, mixed kinds), and a
/// column of nulls only → Utf8 holding each value's JSON text (strings as themselves).
///
/// The file holds parquet-rs's `created_by` (its version) and the `ARROW:schema`
/// key-value entry, nothing else: the same rows give the same bytes.
///
/// Errors: [`JobError::Parquet`] with no path (the caller knows it), when `w` fails or
/// parquet refuses the table.
pub fn write_parquet<W: Write + Send>(w: W, rows: &[MetaRow]) -> Result<(), JobError> {
    let pq = |source: parquet::errors::ParquetError| JobError::Parquet {
        path: None,
        source: Box::new(source),
    };
    let mut fields = vec![
        Field::new(IMAGE_PATH, DataType::Utf8, false),
        Field::new(CAPTION, DataType::Utf8, true),
    ];
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.image_path.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.caption.as_deref()),
        )),
    ];
    for column in json_columns(rows) {
        let (data_type, array) = column.to_arrow();
        fields.push(Field::new(column.name, data_type, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| pq(e.into()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .build();
    let mut writer = ArrowWriter::try_new(w, schema, Some(props)).map_err(pq)?;
    if batch.num_rows() > 0 {
        writer.write(&batch).map_err(pq)?;
    }
    writer.close().map_err(pq)?;
    Ok(())
}

/// Reads the `image_path` and `caption` columns of a metadata parquet file (as
/// [`write_parquet`], or pandas / clip-retrieval, writes it); every [`MetaRow::json`] is
/// `None`: the other columns are not read. A file without a `caption` column gives
/// `caption: None` rows.
///
/// Errors: [`JobError::Io`] when the file cannot be opened, [`JobError::Parquet`] when it
/// is not parquet, [`JobError::ParquetColumn`] when `image_path` is missing or null, or
/// either column is not strings (Utf8, LargeUtf8 or Utf8View).
pub fn read_parquet(path: &Path) -> Result<Vec<MetaRow>, JobError> {
    let pq = |source: parquet::errors::ParquetError| JobError::Parquet {
        path: Some(path.to_path_buf()),
        source: Box::new(source),
    };
    let bad_column = |column: &str, problem: String| JobError::ParquetColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|source| JobError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
    let schema = builder.schema().clone();
    let image_idx = schema.index_of(IMAGE_PATH).map_err(|_| {
        let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        bad_column(IMAGE_PATH, format!("missing (the columns are {names:?})"))
    })?;
    let caption_idx = schema.index_of(CAPTION).ok();
    let mask = ProjectionMask::roots(
        builder.parquet_schema(),
        std::iter::once(image_idx).chain(caption_idx),
    );
    let reader = builder.with_projection(mask).build().map_err(pq)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| pq(e.into()))?;
        let paths = batch
            .column_by_name(IMAGE_PATH)
            .ok_or_else(|| bad_column(IMAGE_PATH, "missing from the data read".into()))?;
        let paths = strings(paths).map_err(|p| bad_column(IMAGE_PATH, p))?;
        let captions = match batch.column_by_name(CAPTION) {
            Some(c) => strings(c).map_err(|p| bad_column(CAPTION, p))?,
            None => vec![None; paths.len()],
        };
        for (path_value, caption) in paths.into_iter().zip(captions) {
            let image_path = path_value
                .ok_or_else(|| bad_column(IMAGE_PATH, format!("null at row {}", rows.len())))?;
            rows.push(MetaRow {
                image_path,
                caption,
                json: None,
            });
        }
    }
    Ok(rows)
}

/// The values of a string column (any of Arrow's three string layouts).
fn strings(array: &ArrayRef) -> Result<Vec<Option<String>>, String> {
    let owned = |it: &mut dyn Iterator<Item = Option<&str>>| -> Vec<Option<String>> {
        it.map(|v| v.map(str::to_string)).collect()
    };
    match array.data_type() {
        DataType::Utf8 => Ok(owned(&mut array.as_string::<i32>().iter())),
        DataType::LargeUtf8 => Ok(owned(&mut array.as_string::<i64>().iter())),
        DataType::Utf8View => Ok(owned(&mut array.as_string_view().iter())),
        other => Err(format!("type {other}, not strings")),
    }
}

/// A `.json` object flattened as `pandas.json_normalize` flattens one record: the
/// top-level fields that are not objects first, then the objects' fields depth-first as
/// `outer.inner`; an empty object yields nothing; a repeated name keeps its first position
/// and takes the later value (Python's dict update).
fn flatten(obj: &Map<String, Value>) -> Vec<(String, &Value)> {
    let mut flat = Flat::default();
    for (key, value) in obj {
        if !value.is_object() {
            flat.set(key.clone(), value);
        }
    }
    for (key, value) in obj {
        if let Value::Object(inner) = value {
            flatten_into(key, inner, &mut flat);
        }
    }
    flat.entries
}

/// pandas' `_normalise_json` below the top level. The depth is bounded by serde_json's
/// recursion limit (128) for parsed JSON.
fn flatten_into<'a>(prefix: &str, obj: &'a Map<String, Value>, flat: &mut Flat<'a>) {
    for (key, value) in obj {
        // pandas strips the separator when the prefix is empty (`{"": {"b": 1}}` → `b`).
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten_into(&name, inner, flat),
            _ => flat.set(name, value),
        }
    }
}

/// Insertion-ordered name → value pairs of one flattened record.
#[derive(Default)]
struct Flat<'a> {
    entries: Vec<(String, &'a Value)>,
    index: HashMap<String, usize>,
}

impl<'a> Flat<'a> {
    fn set(&mut self, name: String, value: &'a Value) {
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, value));
            }
        }
    }
}

/// One flattened json column: a value (or null) per row.
struct JsonColumn<'a> {
    name: String,
    values: Vec<Option<&'a Value>>,
}

/// The flattened `.json` columns of `rows`, in first-seen order, `image_path` and
/// `caption` dropped.
fn json_columns(rows: &[MetaRow]) -> Vec<JsonColumn<'_>> {
    let mut columns: Vec<JsonColumn<'_>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (row, meta) in rows.iter().enumerate() {
        let Some(json) = &meta.json else { continue };
        for (name, value) in flatten(json) {
            if name == IMAGE_PATH || name == CAPTION {
                continue;
            }
            let i = *index.entry(name).or_insert_with_key(|name| {
                columns.push(JsonColumn {
                    name: name.clone(),
                    values: vec![None; rows.len()],
                });
                columns.len() - 1
            });
            if !value.is_null() {
                columns[i].values[row] = Some(value);
            }
        }
    }
    columns
}

/// The Arrow type a json column gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    /// Mixed kinds, arrays, objects: each value's JSON text.
    Json,
}

impl Kind {
    fn of(value: &Value) -> Self {
        match value {
            Value::Bool(_) => Self::Bool,
            Value::Number(n) if n.is_i64() => Self::Int,
            Value::Number(_) => Self::Float,
            Value::String(_) => Self::Str,
            _ => Self::Json,
        }
    }

    fn join(self, other: Self) -> Self {
        match (self, other) {
            (a, b) if a == b => a,
            (Self::Int | Self::Float, Self::Int | Self::Float) => Self::Float,
            _ => Self::Json,
        }
    }
}

impl JsonColumn<'_> {
    /// The column's Arrow type and array (see [`write_parquet`] for the rule).
    fn to_arrow(&self) -> (DataType, ArrayRef) {
        let kind = self
            .values
            .iter()
            .flatten()
            .map(|v| Kind::of(v))
            .reduce(Kind::join)
            .unwrap_or(Kind::Json);
        let values = self.values.iter();
        match kind {
            Kind::Bool => (
                DataType::Boolean,
                Arc::new(BooleanArray::from_iter(
                    values.map(|v| v.and_then(Value::as_bool)),
                )),
            ),
            Kind::Int => (
                DataType::Int64,
                Arc::new(Int64Array::from_iter(
                    values.map(|v| v.and_then(Value::as_i64)),
                )),
            ),
            Kind::Float => (
                DataType::Float64,
                Arc::new(Float64Array::from_iter(
                    values.map(|v| v.and_then(Value::as_f64)),
                )),
            ),
            Kind::Str => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter(
                    values.map(|v| v.and_then(Value::as_str)),
                )),
            ),
            Kind::Json => (
                DataType::Utf8,
                Arc::new(StringArray::from_iter(values.map(|v| {
                    v.map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                }))),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn row(path: &str, caption: Option<&str>, json: Option<Value>) -> MetaRow {
        MetaRow {
            image_path: path.to_string(),
            caption: caption.map(str::to_string),
            json: json.map(obj),
        }
    }

    /// Keys are written in sorted order, so the expected column order holds whether or
    /// not serde_json keeps insertion order.
    fn sample_rows() -> Vec<MetaRow> {
        vec![
            row(
                "a.jpg",
                Some("a cat"),
                Some(json!({
                    "big": 1,
                    "caption": "a cat",
                    "exif": {"Make": "Canon", "Model": {"x": 1}},
                    "flag": true,
                    "key": "000",
                    "score": 0.5,
                    "status": "success",
                    "tags": ["x", "y"],
                    "width": 256,
                })),
            ),
            row(
                "b.jpg",
                None,
                Some(json!({
                    "big": u64::MAX,
                    "flag": false,
                    "key": "001",
                    "mixed": 1,
                    "score": 1,
                    "tags": null,
                    "width": 300,
                })),
            ),
            row("c.jpg", Some("c"), None),
            row(
                "d.jpg",
                Some(""),
                Some(json!({"exif": {}, "image_path": "dup", "mixed": "x", "nothing": null})),
            ),
        ]
    }

    /// A reader over parquet bytes (through a temporary file: `File` is a `ChunkReader`).
    fn reader_of(bytes: &[u8]) -> ParquetRecordBatchReaderBuilder<std::fs::File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        ParquetRecordBatchReaderBuilder::try_new(file).unwrap()
    }

    fn write(rows: &[MetaRow]) -> Vec<u8> {
        let mut out = Vec::new();
        write_parquet(&mut out, rows).unwrap();
        out
    }

    #[test]
    fn columns_types_and_values() {
        let bytes = write(&sample_rows());
        let reader = reader_of(&bytes).build().unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        let schema = b.schema();
        let got: Vec<(&str, &DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        use DataType::*;
        assert_eq!(
            got,
            [
                ("image_path", &Utf8, false),
                ("caption", &Utf8, true),
                ("big", &Float64, true),
                ("flag", &Boolean, true),
                ("key", &Utf8, true),
                ("score", &Float64, true),
                ("status", &Utf8, true),
                ("tags", &Utf8, true),
                ("width", &Int64, true),
                ("exif.Make", &Utf8, true),
                ("exif.Model.x", &Int64, true),
                ("mixed", &Utf8, true),
                ("nothing", &Utf8, true),
            ]
        );
        let s = |name: &str| -> Vec<Option<String>> {
            strings(b.column_by_name(name).unwrap()).unwrap()
        };
        let some = |v: &str| Some(v.to_string());
        assert_eq!(
            s("image_path"),
            [some("a.jpg"), some("b.jpg"), some("c.jpg"), some("d.jpg")]
        );
        assert_eq!(s("caption"), [some("a cat"), None, some("c"), some("")]);
        let f64s = |name: &str| -> Vec<Option<f64>> {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>()
                .iter()
                .collect()
        };
        let i64s = |name: &str| -> Vec<Option<i64>> {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<Int64Type>()
                .iter()
                .collect()
        };
        assert_eq!(f64s("big"), [Some(1.0), Some(u64::MAX as f64), None, None]);
        assert_eq!(f64s("score"), [Some(0.5), Some(1.0), None, None]);
        assert_eq!(i64s("width"), [Some(256), Some(300), None, None]);
        assert_eq!(i64s("exif.Model.x"), [Some(1), None, None, None]);
        let flags: Vec<Option<bool>> = b
            .column_by_name("flag")
            .unwrap()
            .as_boolean()
            .iter()
            .collect();
        assert_eq!(flags, [Some(true), Some(false), None, None]);
        assert_eq!(s("key"), [some("000"), some("001"), None, None]);
        assert_eq!(s("status"), [some("success"), None, None, None]);
        assert_eq!(s("tags"), [some(r#"["x","y"]"#), None, None, None]);
        assert_eq!(s("exif.Make"), [some("Canon"), None, None, None]);
        assert_eq!(s("mixed"), [None, some("1"), None, some("x")]);
        assert_eq!(s("nothing"), [None, None, None, None]);
    }

    #[test]
    fn deterministic_one_row_group_snappy() {
        let a = write(&sample_rows());
        let b = write(&sample_rows());
        assert_eq!(a, b);
        let builder = reader_of(&a);
        let meta = builder.metadata();
        assert_eq!(meta.num_row_groups(), 1);
        assert_eq!(meta.row_group(0).num_rows(), 4);
        for col in meta.row_group(0).columns() {
            assert_eq!(
                col.compression(),
                Compression::SNAPPY,
                "{}",
                col.column_path()
            );
        }
        let file = meta.file_metadata();
        assert_eq!(
            file.created_by(),
            Some(parquet::file::properties::DEFAULT_CREATED_BY)
        );
        let keys: Vec<&str> = file
            .key_value_metadata()
            .unwrap()
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(keys, ["ARROW:schema"]);
    }

    #[test]
    fn flatten_follows_json_normalize() {
        let value = json!({"a": {"b": 2, "c": {"d": null}}, "a.b": 1, "": {"e": 3}, "z": []});
        let m = obj(value);
        let flat: Vec<(String, Value)> = flatten(&m)
            .into_iter()
            .map(|(k, v)| (k, v.clone()))
            .collect();
        // pandas: {**top_level_non_objects, **nested}; `a.b` keeps its first position and
        // takes the nested value; an empty prefix is not joined with ".".
        let expected: Vec<(String, Value)> = vec![
            ("a.b".into(), json!(2)),
            ("z".into(), json!([])),
            ("e".into(), json!(3)),
            ("a.c.d".into(), Value::Null),
        ];
        let mut sorted_got = flat.clone();
        sorted_got.sort_by(|x, y| x.0.cmp(&y.0));
        let mut sorted_expected = expected.clone();
        sorted_expected.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(sorted_got, sorted_expected);
        // Top-level non-objects before the flattened objects.
        assert_eq!(&flat[..2], &expected[..2]);
    }

    #[test]
    fn read_back_paths_and_captions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata_0.parquet");
        std::fs::write(&path, write(&sample_rows())).unwrap();
        let back = read_parquet(&path).unwrap();
        let expected: Vec<MetaRow> = sample_rows()
            .into_iter()
            .map(|r| MetaRow { json: None, ..r })
            .collect();
        assert_eq!(back, expected);

        let empty = dir.path().join("metadata_1.parquet");
        std::fs::write(&empty, write(&[])).unwrap();
        assert_eq!(read_parquet(&empty).unwrap(), []);
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_parquet = dir.path().join("metadata_0.parquet");
        std::fs::write(&not_parquet, b"image_path,caption\na.jpg,cat\n").unwrap();
        let err = read_parquet(&not_parquet).unwrap_err();
        assert!(
            matches!(err, JobError::Parquet { path: Some(ref p), .. } if p == &not_parquet),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("{}: parquet: ", not_parquet.display())));

        let no_paths = dir.path().join("metadata_1.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("url", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec!["http://x"])) as ArrayRef],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&no_paths).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = read_parquet(&no_paths).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: column \"image_path\": missing (the columns are [\"url\"])",
                no_paths.display()
            )
        );

        let ints = dir.path().join("metadata_2.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "image_path",
            DataType::Int64,
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&ints).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = read_parquet(&ints).unwrap_err();
        assert!(
            matches!(err, JobError::ParquetColumn { ref column, ref problem, .. }
                if column == "image_path" && problem == "type Int64, not strings"),
            "{err}"
        );

        let null_path = dir.path().join("metadata_3.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "image_path",
            DataType::Utf8,
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![Some("a.jpg"), None])) as ArrayRef],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&null_path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        assert_eq!(
            read_parquet(&null_path).unwrap_err().to_string(),
            format!(
                "{}: column \"image_path\": null at row 1",
                null_path.display()
            )
        );

        let missing = dir.path().join("nope.parquet");
        assert!(matches!(
            read_parquet(&missing).unwrap_err(),
            JobError::Io { ref path, .. } if path == &missing
        ));
    }
}
