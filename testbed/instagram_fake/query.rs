//! Query strings and the Graph API `fields` parameter, including nested
//! selections such as `id,children{id,media_url}`.

/// The decoded parameters of a query string, in order.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=1&b=2`. A `+` decodes to a space, as in HTML forms.
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(name), percent_decode(value))
            })
            .collect();
        Self { pairs }
    }

    /// Returns the first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        let pair = self.pairs.iter().find(|(key, _)| key == name);
        pair.map(|(_, value)| value.as_str())
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                index += 1;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Percent-encodes every byte but the RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// One requested field, with the fields requested inside it for an edge
/// such as `children{id,media_url}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub nested: Option<Vec<Field>>,
}

impl Field {
    pub fn plain(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            nested: None,
        }
    }
}

/// Parses a `fields` value. Empty entries, as in `id,,caption`, are
/// skipped. Field modifiers such as `.limit(2)` are rejected.
pub fn parse_fields(text: &str) -> Result<Vec<Field>, String> {
    let mut parser = FieldParser {
        text: text.as_bytes(),
        position: 0,
    };
    let fields = parser.list()?;
    if parser.position < parser.text.len() {
        return Err(parser.unexpected());
    }
    Ok(fields)
}

struct FieldParser<'a> {
    text: &'a [u8],
    position: usize,
}

impl FieldParser<'_> {
    /// Reads `field (, field)*` up to the end of the text or a `}`.
    fn list(&mut self) -> Result<Vec<Field>, String> {
        let mut fields = Vec::new();
        loop {
            self.skip_spaces();
            let name = self.name();
            if !name.is_empty() {
                self.skip_spaces();
                let nested = if self.peek() == Some(b'{') {
                    self.position += 1;
                    let inner = self.list()?;
                    if self.peek() != Some(b'}') {
                        return Err(self.unexpected());
                    }
                    self.position += 1;
                    self.skip_spaces();
                    Some(inner)
                } else {
                    None
                };
                fields.push(Field { name, nested });
            }
            match self.peek() {
                Some(b',') => self.position += 1,
                None | Some(b'}') => return Ok(fields),
                Some(_) => return Err(self.unexpected()),
            }
        }
    }

    fn name(&mut self) -> String {
        let start = self.position;
        while let Some(byte) = self.peek() {
            if !(byte.is_ascii_alphanumeric() || byte == b'_') {
                break;
            }
            self.position += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.position]).into_owned()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.position += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.position).copied()
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(byte) => format!(
                "unexpected {:?} at character {}",
                char::from(byte),
                self.position
            ),
            None => "unexpected end of the fields parameter, expected }".to_owned(),
        }
    }
}
