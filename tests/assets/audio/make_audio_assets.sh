#!/usr/bin/env bash
# tests/assets/audio/make_audio_assets.sh: regenerates the audio test assets in this folder (committed; the tests
# never run this). Needs espeak-ng, sox, flac, vorbis-tools (oggenc), opus-tools (opusenc) and lame, all Debian
# packages (scripts/setup.sh installs them). Every tool runs in a repeatable mode (sox -R, fixed Ogg serials), so
# the same tool versions give the same bytes.
#
#   sine_440hz_16k.wav        440 Hz, amplitude 0.5, 1.0 s, 16 kHz mono s16 (no dither)
#   silence_16k.wav           1.0 s of zeros, 16 kHz mono s16
#   noise_clipped_16k.wav     white noise at 3x full scale, hard-clipped by the s16 conversion, 1.0 s
#   speech_16k.wav            espeak-ng "open the settings app and turn on wifi", resampled 22050 -> 16000 by sox
#   speech.flac               speech_16k.wav, lossless (decodes to the same samples)
#   speech.ogg                Vorbis, quality 4;  speech.opus: Opus 32 kbit/s;  speech.mp3: MP3 64 kbit/s CBR
#   speech_44k1_stereo.wav    the first 1.0 s of the espeak-ng output at 44.1 kHz stereo: left = the phrase,
#                             right = the phrase x 0.5 (so the mono mix is 0.75 x the phrase)
#   truncated_*.{wav,flac,ogg,opus,mp3}   the speech files cut (see below); garbage.bin: not audio at all
#   header_only.wav           a WAV header that declares 1 s of data, and no data
# It also writes the seeds of the audio fuzz target (tests/fuzz/corpus/audio/): short clips of the phrase in every
# supported format and in the WAV codecs libsndfile reads (8/24-bit, float, extensible, A-law, mu-law, IMA and MS
# ADPCM, GSM), each under the target's 32 KiB input limit.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

PHRASE="open the settings app and turn on wifi"
SOX=(sox -R -D -q)  # repeatable, no dither

"${SOX[@]}" -n -r 16000 -c 1 -b 16 sine_440hz_16k.wav synth 1.0 sine 440 vol 0.5
"${SOX[@]}" -n -r 16000 -c 1 -b 16 silence_16k.wav trim 0 1.0
# sox warns that samples were clipped: that is the point of this asset.
"${SOX[@]}" -n -r 16000 -c 1 -b 16 noise_clipped_16k.wav synth 1.0 whitenoise vol 3.0 2>/dev/null

espeak-ng -w "$tmp/phrase22.wav" "$PHRASE"
"${SOX[@]}" "$tmp/phrase22.wav" -r 16000 -c 1 -b 16 speech_16k.wav
"${SOX[@]}" "$tmp/phrase22.wav" -r 44100 -c 2 -b 16 speech_44k1_stereo.wav trim 0 1.0 remix 1 1v0.5

flac --silent --force --best -o speech.flac speech_16k.wav
oggenc --quiet --serial 1 -q 4 -o speech.ogg speech_16k.wav
opusenc --quiet --serial 1 --bitrate 32 speech_16k.wav speech.opus
lame --quiet -b 64 speech_16k.wav speech.mp3

# Truncations: each file cut well inside its audio data (the headers stay intact, so the failure is found while
# decoding, not while probing).
cut_at() { head -c "$2" "$1" > "$3"; }
cut_at speech_16k.wav 20000 truncated_speech.wav
cut_at speech.flac $(($(stat -c %s speech.flac) / 2)) truncated_speech.flac
cut_at speech.ogg $(($(stat -c %s speech.ogg) / 2)) truncated_speech.ogg
cut_at speech.opus $(($(stat -c %s speech.opus) / 2)) truncated_speech.opus
cut_at speech.mp3 $(($(stat -c %s speech.mp3) / 2 + 7)) truncated_speech.mp3  # +7: mid-frame
head -c 44 speech_16k.wav > header_only.wav
printf 'this is a text file, not audio: %s\n' "$PHRASE" > garbage.bin

# ---- fuzz seeds
seeds=../../fuzz/corpus/audio
rm -rf "$seeds" && mkdir -p "$seeds"
clip=(trim 0.3 0.4)  # 0.4 s from inside the phrase
"${SOX[@]}" speech_16k.wav -r 8000 "$seeds/wav_s16_8k.wav" "${clip[@]}"
"${SOX[@]}" speech_16k.wav -r 11025 -c 2 -b 8 "$seeds/wav_u8_stereo_11k.wav" trim 0.3 0.2
"${SOX[@]}" speech_16k.wav -r 48000 -e floating-point -b 32 "$seeds/wav_f32_48k.wav" trim 0.3 0.05
"${SOX[@]}" speech_16k.wav -c 3 -b 24 "$seeds/wav_s24_3ch_extensible.wav" trim 0.3 0.1
"${SOX[@]}" speech_16k.wav -r 8000 -e a-law "$seeds/wav_alaw_8k.wav" "${clip[@]}"
"${SOX[@]}" speech_16k.wav -r 8000 -e u-law "$seeds/wav_ulaw_8k.wav" "${clip[@]}"
"${SOX[@]}" speech_16k.wav -e ima-adpcm "$seeds/wav_ima_adpcm.wav" "${clip[@]}"
"${SOX[@]}" speech_16k.wav -e ms-adpcm "$seeds/wav_ms_adpcm.wav" "${clip[@]}"
"${SOX[@]}" speech_16k.wav -r 8000 -e gsm-full-rate "$seeds/wav_gsm_8k.wav" "${clip[@]}"
"${SOX[@]}" speech_16k.wav "$tmp/clip.wav" "${clip[@]}"
"${SOX[@]}" speech_16k.wav -r 44100 -c 2 "$tmp/clip44.wav" trim 0.3 0.2
flac --silent --force --best -o "$seeds/flac_16k.flac" "$tmp/clip.wav"
oggenc --quiet --serial 2 -q 0 -o "$seeds/vorbis_16k.ogg" "$tmp/clip.wav"
opusenc --quiet --serial 3 --bitrate 16 "$tmp/clip.wav" "$seeds/opus_16k.opus"
lame --quiet -b 32 "$tmp/clip.wav" "$seeds/mp3_16k.mp3"
lame --quiet -V 6 --tt "open settings" --id3v2-only "$tmp/clip44.wav" "$seeds/mp3_vbr_44k_stereo_id3.mp3"
lame --quiet -b 32 -t "$tmp/clip.wav" "$seeds/mp3_16k_no_tag.mp3"
ls -l "$seeds"

ls -l ./*.wav ./*.flac ./*.ogg ./*.opus ./*.mp3 ./*.bin | awk '{ total += $5; print } END { print "total", total, "bytes" }'
