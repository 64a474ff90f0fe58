//! Framing: size prefix, request header, response encoding. (Being written.)
