//! The `chat` and `preferences` Arrow schemas (DESIGN.md, data contracts)
//! and their builders. A conversation is `List<Struct<role, content>>`, the
//! shape TRL and the HF chat templates take, so a model's chat template can
//! be applied to a row as it is.

use arrow::array::{ArrayRef, Float64Builder, ListArray, ListBuilder, StringBuilder, StructArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

/// Who speaks a message; the only roles a `chat` artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The human side.
    User,
    /// The model side: the turns a fine-tune learns.
    Assistant,
}

impl Role {
    /// Parses a role name; OpenAI's `developer` is its newer name for `system`.
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "system" | "developer" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(format!(
                "unknown role `{other}`: kiln's chat template has system, user and assistant"
            )),
        }
    }

    /// The role as stored (`system`, `user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Who speaks.
    pub role: Role,
    /// What they say.
    pub content: Cow<'a, str>,
}

impl<'a> Message<'a> {
    /// A message with `role` and `content`.
    pub fn new(role: Role, content: impl Into<Cow<'a, str>>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// The fields of one message: `role: Utf8, content: Utf8`.
fn message_fields() -> Fields {
    Fields::from(vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ])
}

/// The list item of a message column: `Struct<role: Utf8, content: Utf8>`.
fn message_item() -> FieldRef {
    static F: OnceLock<FieldRef> = OnceLock::new();
    F.get_or_init(|| Arc::new(Field::new("item", DataType::Struct(message_fields()), false)))
        .clone()
}

/// The type of a message column: `List<Struct<role: Utf8, content: Utf8>>`.
pub fn messages_type() -> DataType {
    DataType::List(message_item())
}

/// `id, messages, source, reference?, metadata?`; `reference` holds a known
/// final answer (GSM8K's `#### n`) for evaluation.
pub fn chat_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("messages", messages_type(), false),
            Field::new("source", DataType::Utf8, false),
            Field::new("reference", DataType::Utf8, true),
            Field::new("metadata", DataType::Utf8, true),
        ]))
    })
    .clone()
}

/// `id, prompt, chosen, rejected, source, metadata?, responses?, margin?`:
/// the conversation before the compared replies, then the two final
/// assistant replies. A ranked record (InstructGPT's K responses, best
/// first) also keeps the whole ranking in `responses`, with `chosen` its
/// first and `rejected` its last, so pairwise consumers read it unchanged;
/// `margin` is an optional per-pair margin for the reward loss.
pub fn preferences_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("prompt", messages_type(), false),
            Field::new("chosen", DataType::Utf8, false),
            Field::new("rejected", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("metadata", DataType::Utf8, true),
            Field::new("responses", responses_type(), true),
            Field::new("margin", DataType::Float64, true),
        ]))
    })
    .clone()
}

/// The type of the `responses` column: `List<Utf8>` (the item field as
/// arrow's `ListBuilder` names it, so built arrays match the schema).
pub fn responses_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// `id, prompt, reference?, source`: a conversation that ends with a user
/// turn, for a policy to continue (PPO, evaluation), and the reply it had
/// if one is known.
pub fn prompts_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("prompt", messages_type(), false),
            Field::new("reference", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
        ]))
    })
    .clone()
}

/// Builds a `prompts` batch row by row.
pub struct PromptBuilder {
    id: StringBuilder,
    prompt: MessagesBuilder,
    reference: StringBuilder,
    source: StringBuilder,
    rows: usize,
}

impl PromptBuilder {
    /// A builder sized for `rows` prompts of about `bytes` in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        PromptBuilder {
            id: StringBuilder::with_capacity(rows, rows * 24),
            prompt: MessagesBuilder::with_capacity(rows, bytes),
            reference: StringBuilder::with_capacity(rows, 0),
            source: StringBuilder::with_capacity(rows, rows * 16),
            rows: 0,
        }
    }

    /// Appends one prompt.
    pub fn push(&mut self, id: &str, prompt: &[Message], reference: Option<&str>, source: &str) {
        self.id.append_value(id);
        self.prompt.push(prompt);
        self.reference.append_option(reference);
        self.source.append_value(source);
        self.rows += 1;
    }

    /// Rows added so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch.
    pub fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            self.prompt.finish(),
            Arc::new(self.reference.finish()),
            Arc::new(self.source.finish()),
        ];
        RecordBatch::try_new(prompts_schema(), cols).expect("prompts batch") // ok: columns match the schema by construction
    }
}

/// A conversation as owned `(role, content)` pairs.
pub type Turns = Vec<(String, String)>;

/// Reads a message column (`List<Struct<role, content>>`) row by row:
/// `None` for a null row, else `(role, content)` pairs.
pub fn message_rows(col: &dyn arrow::array::Array, what: &str) -> Result<Vec<Option<Turns>>, String> {
    use arrow::array::{Array, AsArray};
    let list = col.as_list_opt::<i32>().ok_or_else(|| format!("`{what}` is not a list column"))?;
    let structs = list
        .values()
        .as_struct_opt()
        .ok_or_else(|| format!("`{what}` items are not structs"))?;
    let get = |name: &str| {
        structs
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| format!("`{what}` items have no Utf8 `{name}`"))
    };
    let (role, content) = (get("role")?, get("content")?);
    let offsets = list.value_offsets();
    Ok((0..list.len())
        .map(|i| {
            list.is_valid(i).then(|| {
                (offsets[i] as usize..offsets[i + 1] as usize)
                    .map(|j| (role.value(j).to_string(), content.value(j).to_string()))
                    .collect()
            })
        })
        .collect())
}

/// Builds one message column: offsets plus flat role and content strings.
struct MessagesBuilder {
    offsets: Vec<i32>,
    role: StringBuilder,
    content: StringBuilder,
}

impl MessagesBuilder {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        MessagesBuilder {
            offsets,
            role: StringBuilder::with_capacity(rows * 4, rows * 32),
            content: StringBuilder::with_capacity(rows * 4, bytes),
        }
    }

    fn push(&mut self, messages: &[Message]) {
        for m in messages {
            self.role.append_value(m.role.as_str());
            self.content.append_value(&m.content);
        }
        let last = self.offsets.last().copied().unwrap_or(0);
        // A chunk holds at most a few million messages: far below i32::MAX.
        self.offsets.push(last + messages.len() as i32);
    }

    fn finish(mut self) -> ArrayRef {
        // ok: `new` panics only on mismatched lengths or nulls in a
        // non-nullable field; roles and contents are pushed in pairs, never
        // null, and the offsets count them.
        let values = StructArray::new(
            message_fields(),
            vec![Arc::new(self.role.finish()) as ArrayRef, Arc::new(self.content.finish())],
            None,
        );
        let offsets = OffsetBuffer::new(self.offsets.into());
        Arc::new(ListArray::new(message_item(), offsets, Arc::new(values), None))
    }
}

/// Builds a `chat` batch row by row.
pub struct ChatBuilder {
    id: StringBuilder,
    messages: MessagesBuilder,
    source: StringBuilder,
    reference: StringBuilder,
    metadata: StringBuilder,
    rows: usize,
}

impl ChatBuilder {
    /// A builder sized for `rows` conversations of about `bytes` in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        ChatBuilder {
            id: StringBuilder::with_capacity(rows, rows * 24),
            messages: MessagesBuilder::with_capacity(rows, bytes),
            source: StringBuilder::with_capacity(rows, rows * 16),
            reference: StringBuilder::with_capacity(rows, 0),
            metadata: StringBuilder::with_capacity(rows, 0),
            rows: 0,
        }
    }

    /// Appends one conversation.
    pub fn push(&mut self, id: &str, messages: &[Message], source: &str, reference: Option<&str>, metadata: Option<&str>) {
        self.id.append_value(id);
        self.messages.push(messages);
        self.source.append_value(source);
        self.reference.append_option(reference);
        self.metadata.append_option(metadata);
        self.rows += 1;
    }

    /// Whether no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch.
    pub fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            self.messages.finish(),
            Arc::new(self.source.finish()),
            Arc::new(self.reference.finish()),
            Arc::new(self.metadata.finish()),
        ];
        RecordBatch::try_new(chat_schema(), cols).expect("chat batch") // ok: columns match the schema by construction
    }
}

/// Builds a `preferences` batch row by row.
pub struct PreferenceBuilder {
    id: StringBuilder,
    prompt: MessagesBuilder,
    chosen: StringBuilder,
    rejected: StringBuilder,
    source: StringBuilder,
    metadata: StringBuilder,
    responses: ListBuilder<StringBuilder>,
    margin: Float64Builder,
    rows: usize,
}

impl PreferenceBuilder {
    /// A builder sized for `rows` pairs of about `bytes` in all.
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        PreferenceBuilder {
            id: StringBuilder::with_capacity(rows, rows * 24),
            prompt: MessagesBuilder::with_capacity(rows, bytes / 2),
            chosen: StringBuilder::with_capacity(rows, bytes / 4),
            rejected: StringBuilder::with_capacity(rows, bytes / 4),
            source: StringBuilder::with_capacity(rows, rows * 16),
            metadata: StringBuilder::with_capacity(rows, 0),
            responses: ListBuilder::new(StringBuilder::new()),
            margin: Float64Builder::with_capacity(rows),
            rows: 0,
        }
    }

    /// Appends one comparison.
    pub fn push(&mut self, id: &str, prompt: &[Message], chosen: &str, rejected: &str, source: &str, metadata: Option<&str>) {
        self.push_ranked(id, prompt, chosen, rejected, None, None, source, metadata);
    }

    /// Appends one comparison with its optional ranking (`responses`, best
    /// first; `chosen`/`rejected` should be its first and last) and margin.
    #[allow(clippy::too_many_arguments)] // one argument per column
    pub fn push_ranked(
        &mut self,
        id: &str,
        prompt: &[Message],
        chosen: &str,
        rejected: &str,
        responses: Option<&[&str]>,
        margin: Option<f64>,
        source: &str,
        metadata: Option<&str>,
    ) {
        self.id.append_value(id);
        self.prompt.push(prompt);
        self.chosen.append_value(chosen);
        self.rejected.append_value(rejected);
        self.source.append_value(source);
        self.metadata.append_option(metadata);
        match responses {
            Some(r) => {
                for x in r {
                    self.responses.values().append_value(x);
                }
                self.responses.append(true);
            }
            None => self.responses.append(false),
        }
        self.margin.append_option(margin);
        self.rows += 1;
    }

    /// Whether no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch.
    pub fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            self.prompt.finish(),
            Arc::new(self.chosen.finish()),
            Arc::new(self.rejected.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.metadata.finish()),
            Arc::new(self.responses.finish()),
            Arc::new(self.margin.finish()),
        ];
        RecordBatch::try_new(preferences_schema(), cols).expect("preferences batch") // ok: columns match the schema by construction
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn chat_rows_round_trip_through_the_list_column() {
        let mut b = ChatBuilder::with_capacity(2, 64);
        b.push(
            "a",
            &[Message::new(Role::User, "hi"), Message::new(Role::Assistant, "hello")],
            "s",
            Some("4"),
            None,
        );
        b.push(
            "b",
            &[Message::new(Role::System, "be brief"), Message::new(Role::User, "x")],
            "s",
            None,
            Some("{}"),
        );
        let batch = b.finish();
        assert_eq!(batch.schema(), chat_schema());
        let list = batch.column(1).as_list::<i32>();
        assert_eq!(list.value_length(0), 2);
        assert_eq!(list.value_length(1), 2);
        let row1 = list.value(1);
        let s = row1.as_struct();
        assert_eq!(s.column(0).as_string::<i32>().value(0), "system");
        assert_eq!(s.column(1).as_string::<i32>().value(1), "x");
        assert!(batch.column(3).is_null(1));
    }

    #[test]
    fn preference_rows_match_the_schema() {
        let mut b = PreferenceBuilder::with_capacity(1, 64);
        b.push("p", &[Message::new(Role::User, "q")], "good", "bad", "s", None);
        b.push_ranked(
            "r",
            &[Message::new(Role::User, "q")],
            "a",
            "c",
            Some(&["a", "b", "c"]),
            Some(0.5),
            "s",
            None,
        );
        let batch = b.finish();
        assert_eq!(batch.schema(), preferences_schema());
        assert_eq!(batch.column(2).as_string::<i32>().value(0), "good");
        let responses = batch.column_by_name("responses").unwrap().as_list::<i32>();
        assert!(responses.is_null(0));
        assert_eq!(responses.value(1).as_string::<i32>().value(1), "b");
        let margin = batch.column_by_name("margin").unwrap();
        assert!(margin.is_null(0) && margin.is_valid(1));
    }
}
