//! A small JSON Schema checker for the schemas certfleet ships (docs/events.schema.json):
//! `type`, `required`, `properties`, `const`, `enum`, `oneOf`, `items` and local `$ref`s
//! (`#/$defs/...`). Other keywords (`pattern`, `format`, descriptions) are not checked.
//! Enough to catch an event that lacks a field, has one of the wrong type or an unknown
//! kind, without a validator's dependencies.

use serde_json::Value;

/// Checks `value` against `schema` (the root, for `$ref`s); the error says where and why.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, schema, value, "$")
}

fn check(root: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix("#/")
            .ok_or_else(|| format!("{at}: only local $refs are supported, not {reference}"))?
            .split('/')
            .try_fold(root, |node, part| node.get(part))
            .ok_or_else(|| format!("{at}: $ref {reference} not found"))?;
        check(root, target, value, at)?;
    }
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type in schema")),
        };
        if !names.iter().any(|name| is_type(value, name)) {
            return Err(format!("{at}: {value} is not of type {names:?}"));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            return Err(format!("{at}: {value} is not {constant}"));
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let (Some(Value::Array(required)), Value::Object(object)) = (schema.get("required"), value) {
        for name in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                return Err(format!("{at}: missing {name}"));
            }
        }
    }
    if let (Some(Value::Object(properties)), Value::Object(object)) =
        (schema.get("properties"), value)
    {
        for (name, property) in properties {
            if let Some(field) = object.get(name) {
                check(root, property, field, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Value::Array(values)) = (schema.get("items"), value) {
        for (index, item) in values.iter().enumerate() {
            check(root, items, item, &format!("{at}[{index}]"))?;
        }
    }
    if let Some(Value::Array(branches)) = schema.get("oneOf") {
        let errors: Vec<String> = branches
            .iter()
            .filter_map(|branch| check(root, branch, value, at).err())
            .collect();
        let matched = branches.len() - errors.len();
        if matched != 1 {
            return Err(format!(
                "{at}: matches {matched} of the oneOf branches, not exactly one: {}",
                errors.join("; ")
            ));
        }
    }
    Ok(())
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_missing_field_a_wrong_type_and_an_unknown_branch_are_caught() {
        let schema = json!({
            "type": "object",
            "required": ["kind"],
            "oneOf": [
                {"properties": {"kind": {"const": "a"}, "n": {"$ref": "#/$defs/n"}},
                 "required": ["kind", "n"]},
                {"properties": {"kind": {"const": "b"}}, "required": ["kind"]}
            ],
            "$defs": {"n": {"type": "integer"}}
        });
        assert_eq!(validate(&schema, &json!({"kind": "a", "n": 1})), Ok(()));
        assert_eq!(validate(&schema, &json!({"kind": "b"})), Ok(()));
        assert!(validate(&schema, &json!({"kind": "a"})).is_err());
        assert!(validate(&schema, &json!({"kind": "a", "n": "1"})).is_err());
        assert!(validate(&schema, &json!({"kind": "c"})).is_err());
        assert!(validate(&schema, &json!([])).is_err());
    }
}
