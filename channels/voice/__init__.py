"""The voice edition: articles read aloud and published as the newsroom's podcast.

`engines` (speech engines behind one seam), `script` (what is read),
`audio` (MP3 and ID3), `podcast` (the RSS + iTunes + Podcasting 2.0 document)
and `channel` (the feed channel tying them to the delivery pipeline).
"""

from channels.voice.channel import VoiceChannel

__all__ = ["VoiceChannel"]
