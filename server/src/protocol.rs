//! Protocol v1: the JSON text frames exchanged on `/ws/play`.
//!
//! Every frame is one JSON object with a `type` field. `docs/protocol.md`
//! documents each message with an example; tests check the examples parse.

use emofy_game::{Agreement, Emotion, ImageId, Millis, PlayerId, Role, RoundId};
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message from a player's client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: join as a new guest (`name`) or resume (`token`).
    Hello {
        v: u32,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        token: Option<String>,
    },
    /// Ask for the next round (skips the current one if it is still open).
    Next,
    /// Answer the open round.
    Answer { round: RoundId, emotion: Emotion },
    /// Ask for a leaderboard snapshot.
    Leaderboard,
}

/// The `type` values a client may send.
pub const CLIENT_TYPES: [&str; 4] = ["hello", "next", "answer", "leaderboard"];

/// Why a client frame could not be turned into a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub code: ErrorCode,
    pub detail: String,
}

impl ClientMessage {
    /// Parses one text frame, telling apart non-JSON, unknown types and bad fields.
    pub fn parse(text: &str) -> Result<ClientMessage, ParseError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| ParseError {
            code: ErrorCode::BadJson,
            detail: e.to_string(),
        })?;
        let ty = value
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| ParseError {
                code: ErrorCode::InvalidMessage,
                detail: "missing string field `type`".into(),
            })?;
        if !CLIENT_TYPES.contains(&ty) {
            return Err(ParseError {
                code: ErrorCode::UnknownType,
                detail: format!("unknown message type {:?}", truncate(ty, 40)),
            });
        }
        serde_json::from_value(value).map_err(|e| ParseError {
            code: ErrorCode::InvalidMessage,
            detail: e.to_string(),
        })
    }
}

/// What a live leaderboard viewer (`/ws/leaderboard`) may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ViewerMessage {
    /// Watch a board: `period` (default all-time), `top` rows (1–100, default 10),
    /// and, with a player token, the viewer's own rank.
    Subscribe {
        #[serde(default)]
        board: Option<String>,
        #[serde(default)]
        period: Option<emofy_game::Period>,
        #[serde(default)]
        top: Option<usize>,
        #[serde(default)]
        token: Option<String>,
    },
}

impl ViewerMessage {
    /// Parses one viewer frame: `bad_json` for non-JSON, `invalid_message` otherwise.
    pub fn parse(text: &str) -> Result<ViewerMessage, ParseError> {
        serde_json::from_str(text).map_err(|e| ParseError {
            code: if e.is_syntax() || e.is_eof() {
                ErrorCode::BadJson
            } else {
                ErrorCode::InvalidMessage
            },
            detail: e.to_string(),
        })
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The player as the client sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerView {
    pub id: PlayerId,
    pub name: String,
    pub role: Role,
}

/// The model's suggestion shown with a round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub emotion: Emotion,
    pub confidence: f32,
    pub model: String,
}

impl From<&emofy_inference::Prediction> for Suggestion {
    fn from(p: &emofy_inference::Prediction) -> Self {
        Suggestion {
            emotion: p.top(),
            confidence: p.confidence(),
            model: p.model.clone(),
        }
    }
}

/// An image reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRef {
    pub id: ImageId,
    pub url: String,
}

/// Points for one answer, itemised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointsView {
    pub base: u32,
    pub speed_bonus: u32,
    pub multiplier_percent: u32,
    pub total: u32,
}

/// A label an image came with, and where from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownView {
    pub label: Emotion,
    /// `demo` or `dataset`.
    pub source: String,
}

/// Where an image stands after an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageProgress {
    pub votes: u32,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consensus: Option<Emotion>,
}

/// One leaderboard row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    pub rank: u64,
    pub player: PlayerId,
    pub name: String,
    pub score: u64,
}

/// The requesting player's own standing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnStanding {
    pub rank: u64,
    pub score: u64,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        v: u32,
        player: PlayerView,
        token: String,
        token_expires_ms: Millis,
        resumed: bool,
        score: u64,
        streak: u32,
        best_streak: u32,
        round_seconds: u64,
    },
    Round {
        round: RoundId,
        image: ImageRef,
        suggestion: Option<Suggestion>,
        prompt: String,
        offered_ms: Millis,
        deadline_ms: Millis,
        time_limit_ms: u64,
    },
    Result {
        round: RoundId,
        emotion: Emotion,
        agreement: Agreement,
        /// True when the points depend on a consensus not reached yet.
        pending: bool,
        points: PointsView,
        /// Settlement points this answer earned at once by retiring the image.
        settlement: u32,
        /// On a gold round: the image's verified label ("the crowd says: …").
        #[serde(skip_serializing_if = "Option::is_none")]
        gold: Option<Emotion>,
        /// On a settled check (a gold round on a face the crowd settled
        /// beyond doubt, no moderator's word): the crowd's label.
        #[serde(skip_serializing_if = "Option::is_none")]
        settled: Option<Emotion>,
        /// The label the face came with (a demo face's drawn emotion, an
        /// imported dataset's label), for instant feedback; `agreement`
        /// counts it as one vote.
        #[serde(skip_serializing_if = "Option::is_none")]
        known: Option<KnownView>,
        /// The round's suggestion was a test (a deliberately wrong class), not the model's guess.
        suggestion_was_test: bool,
        score: u64,
        streak: u32,
        best_streak: u32,
        image: ImageProgress,
    },
    RoundTimeout {
        round: RoundId,
    },
    NoRound {
        reason: String,
        retry_after_ms: u64,
    },
    Score {
        score: u64,
        delta: u32,
        reason: String,
        /// On a settlement: the face whose consensus confirmed the
        /// player's answer ("your answer on this face was confirmed").
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<ImageId>,
    },
    Leaderboard {
        board: String,
        top: Vec<LeaderboardRow>,
        you: Option<OwnStanding>,
        players: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        round: Option<RoundId>,
    },
    Bye {
        reason: String,
    },
}

impl ServerMessage {
    /// An error frame with the code's standard message plus `detail`.
    pub fn error(code: ErrorCode, detail: Option<&str>, round: Option<RoundId>) -> ServerMessage {
        let message = match detail {
            Some(d) if !d.is_empty() => format!("{} ({})", code.message(), d),
            _ => code.message().to_owned(),
        };
        ServerMessage::Error {
            code,
            message,
            round,
        }
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail; fall back to a fixed internal error.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"internal error"}"#.to_owned()
        })
    }
}

/// The prompt shown with a round (`blind`: a face the model is tested on,
/// shown without its guess).
pub fn prompt_for(suggestion: Option<&Suggestion>, blind: bool) -> String {
    match suggestion {
        Some(s) => format!(
            "The predicted emotion is {}. Select the correct one!",
            s.emotion
        ),
        None if blind => {
            "No model guess on this face: your answer helps test the model. Select the correct emotion!"
                .to_owned()
        }
        None => "The model has no guess for this face yet. Select the correct emotion!".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_distinguishes_error_kinds() {
        assert_eq!(
            ClientMessage::parse("{nope").map_err(|e| e.code),
            Err(ErrorCode::BadJson)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"dance"}"#).map_err(|e| e.code),
            Err(ErrorCode::UnknownType)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"answer","round":"x","emotion":"happy"}"#)
                .map_err(|e| e.code),
            Err(ErrorCode::InvalidMessage)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"hello","v":1,"name":{"$gt":""}}"#).map_err(|e| e.code),
            Err(ErrorCode::InvalidMessage)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"next"}"#),
            Ok(ClientMessage::Next)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"hello","v":1,"name":"Ann"}"#),
            Ok(ClientMessage::Hello {
                v: 1,
                name: Some("Ann".into()),
                token: None
            })
        );
    }

    #[test]
    fn documented_examples_are_valid() {
        let doc = include_str!("../../docs/protocol.md");
        let mut blocks = 0;
        for block in doc.split("```json").skip(1) {
            let json = block.split("```").next().unwrap_or_default();
            let v: serde_json::Value =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
            let ty = v["type"].as_str().unwrap_or_default().to_owned();
            if CLIENT_TYPES.contains(&ty.as_str()) {
                assert!(
                    ClientMessage::parse(json).is_ok(),
                    "client example does not parse: {json}"
                );
            }
            blocks += 1;
        }
        assert!(blocks >= 14);
        for ty in CLIENT_TYPES.iter().chain(&[
            "welcome",
            "round",
            "result",
            "round_timeout",
            "no_round",
            "score",
            "leaderboard",
            "error",
            "bye",
        ]) {
            assert!(
                doc.contains(&format!("### `{ty}`")),
                "{ty} is not documented"
            );
        }
    }

    #[test]
    fn prompt_matches_the_prototype_wording() {
        let s = Suggestion {
            emotion: Emotion::Happy,
            confidence: 0.9,
            model: "m".into(),
        };
        assert_eq!(
            prompt_for(Some(&s), false),
            "The predicted emotion is happy. Select the correct one!"
        );
    }
}
