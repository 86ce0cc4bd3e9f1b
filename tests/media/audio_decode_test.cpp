// tests/media/audio_decode_test.cpp: audio decoding (src/media/audio*.cpp) on the committed assets
// (tests/assets/audio/make_audio_assets.sh) and on WAV files written here: every format to the same samples,
// resampling and channel mixing, limits, and malformed/truncated/unsupported input -> invalid_request.
// Codec tolerances (measured on speech_16k.wav and stated beside each check): FLAC exact; Vorbis q4, Opus 32 kbit/s
// and MP3 64 kbit/s compared by waveform SNR against the WAV and by the Whisper log-mel of both.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "audio_util.h"
#include "core/error.h"
#include "media/audio.h"
#include "media/audio_resample.h"
#include "media/mpeg_frame.h"
#include "media/whisper_features.h"

namespace autoglm {
namespace {

using test::make_wav;
using test::read_asset;
using test::wav_header;

std::vector<float> decode(const std::vector<uint8_t>& bytes, const audio_limits& lim = {},
                          const std::string& hint = "") {
  return decode_audio_16k_mono(bytes.data(), bytes.size(), lim, hint);
}

std::vector<float> decode_asset(const std::string& name) { return decode(read_asset(name)); }

// The message of the invalid_request that decoding `bytes` must throw ("" and a failure if none or another type).
std::string decode_error(const std::vector<uint8_t>& bytes, const audio_limits& lim = {},
                         const std::string& hint = "") {
  try {
    decode(bytes, lim, hint);
  } catch (const invalid_request& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an invalid_request: " << e.what();
    return {};
  }
  ADD_FAILURE() << "decoded without an error";
  return {};
}

// speech_16k.wav's samples read without any library: 16-bit PCM after the canonical 44-byte header.
std::vector<float> speech_reference() {
  const std::vector<uint8_t> b = read_asset("speech_16k.wav");
  std::vector<float> v;
  for (size_t i = 44; i + 1 < b.size(); i += 2) v.push_back(static_cast<int16_t>(b[i] | (b[i + 1] << 8)) / 32768.0f);
  return v;
}

bool in_unit_range(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x) && x >= -1.0f && x <= 1.0f; });
}

// Mean |difference| of the Whisper log-mel (80 bins) over the frames that hold the speech.
double mel_mean_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  const whisper_feature_config cfg;
  const std::vector<float> ma = whisper_log_mel(a.data(), a.size(), cfg), mb = whisper_log_mel(b.data(), b.size(), cfg);
  const int frames = static_cast<int>(std::min(a.size(), b.size()) / cfg.hop_length);
  double sum = 0;
  for (int m = 0; m < cfg.feature_size; ++m)
    for (int t = 0; t < frames; ++t)
      sum += std::fabs(ma[size_t(m) * cfg.nb_max_frames + t] - mb[size_t(m) * cfg.nb_max_frames + t]);
  return sum / (double(cfg.feature_size) * frames);
}

// ------------------------------------------------------------------------------------------------ formats

TEST(audio_sniff, formats_from_content) {
  EXPECT_EQ(sniff_audio_format(read_asset("speech_16k.wav").data(), 64), audio_format::wav);
  EXPECT_EQ(sniff_audio_format(read_asset("speech.flac").data(), 64), audio_format::flac);
  EXPECT_EQ(sniff_audio_format(read_asset("speech.ogg").data(), 64), audio_format::ogg);
  EXPECT_EQ(sniff_audio_format(read_asset("speech.opus").data(), 64), audio_format::ogg);
  EXPECT_EQ(sniff_audio_format(read_asset("speech.mp3").data(), 64), audio_format::mp3);
  const auto garbage = read_asset("garbage.bin");
  EXPECT_EQ(sniff_audio_format(garbage.data(), garbage.size()), audio_format::unknown);
  using bytes = std::vector<uint8_t>;
  const bytes m4a = {0, 0, 0, 0x20, 'f', 't', 'y', 'p', 'M', '4', 'A', ' '}, webm = {0x1a, 0x45, 0xdf, 0xa3, 1, 0},
              aiff = {'F', 'O', 'R', 'M', 0, 0, 0, 0x10, 'A', 'I', 'F', 'F'}, adts = {0xff, 0xf1, 0x50, 0x80},
              amr = {'#', '!', 'A', 'M', 'R', '\n'}, riff_only = {'R', 'I', 'F', 'F'};
  auto sniff = [](const bytes& b) { return sniff_audio_format(b.data(), b.size()); };
  EXPECT_EQ(sniff(m4a), audio_format::mp4);
  EXPECT_EQ(sniff(webm), audio_format::webm);
  EXPECT_EQ(sniff(aiff), audio_format::aiff);
  EXPECT_EQ(sniff(adts), audio_format::aac);
  EXPECT_EQ(sniff(amr), audio_format::amr);
  EXPECT_EQ(sniff(riff_only), audio_format::unknown);
  EXPECT_EQ(sniff_audio_format(nullptr, 0), audio_format::unknown);
}

TEST(audio_probe, headers_of_every_format) {
  struct expect {
    const char* file;
    audio_format format;
    int channels, rate;
    int64_t frames;
  };
  for (const expect& e : {expect{"speech_16k.wav", audio_format::wav, 1, 16000, 41677},
                          expect{"speech.flac", audio_format::flac, 1, 16000, 41677},
                          expect{"speech.ogg", audio_format::ogg, 1, 16000, 41677},
                          expect{"speech.opus", audio_format::ogg, 1, 16000, 41677},
                          expect{"speech.mp3", audio_format::mp3, 1, 16000, 41677},
                          expect{"speech_44k1_stereo.wav", audio_format::wav, 2, 44100, 44100}}) {
    SCOPED_TRACE(e.file);
    const auto b = read_asset(e.file);
    const audio_info info = probe_audio(b.data(), b.size());
    EXPECT_EQ(info.format, e.format);
    EXPECT_EQ(info.channels, e.channels);
    EXPECT_EQ(info.sample_rate, e.rate);
    EXPECT_EQ(info.frames, e.frames);
    EXPECT_TRUE(info.exact_length);
    EXPECT_NEAR(info.seconds(), double(e.frames) / e.rate, 1e-12);
    EXPECT_EQ(info.frames_16k(), std::llround(double(e.frames) * 16000 / e.rate));
  }
}

TEST(audio_decode, wav_16k_mono_is_returned_sample_for_sample) {
  const std::vector<float> ref = speech_reference();
  ASSERT_EQ(ref.size(), 41677u);
  EXPECT_EQ(decode_asset("speech_16k.wav"), ref);
}

TEST(audio_decode, flac_is_lossless) { EXPECT_EQ(decode_asset("speech.flac"), speech_reference()); }

TEST(audio_decode, lossy_codecs_match_the_wav_within_codec_tolerance) {
  // Gapless decoding gives each codec's output the WAV's exact length and alignment (Opus pre-skip, the LAME
  // tag's delay and padding), so the samples compare one to one. Measured on these files (encoded by libvorbis
  // 1.3.7, libopus 1.3.1, LAME 3.100; decoded by libsndfile 1.2.0 and libmpg123 1.31.2): waveform SNR
  // 22.3 / 17.9 / 24.5 dB, Whisper log-mel mean |diff| over the speech frames 0.047 / 0.050 / 0.032 (the log-mel of
  // this phrase spans about 2.0). Bounds: 3 dB below and 1.5x above the measurements.
  const std::vector<float> ref = speech_reference();
  struct codec {
    const char* file;
    double min_snr_db, max_mel_diff;
  };
  for (const codec& c : {codec{"speech.ogg", 19.0, 0.07}, codec{"speech.opus", 14.5, 0.075},
                         codec{"speech.mp3", 21.0, 0.048}}) {
    SCOPED_TRACE(c.file);
    const std::vector<float> x = decode_asset(c.file);
    ASSERT_EQ(x.size(), ref.size());
    EXPECT_TRUE(in_unit_range(x));
    const double snr = test::snr_db(ref, x), mel = mel_mean_abs_diff(ref, x);
    std::printf("[audio] %-12s SNR %.2f dB, log-mel mean |diff| %.4f\n", c.file, snr, mel);
    EXPECT_GT(snr, c.min_snr_db);
    EXPECT_LT(mel, c.max_mel_diff);
  }
}

TEST(audio_decode, stereo_44k1_is_mixed_and_resampled) {
  // Left = the phrase, right = 0.5 x the phrase (both from the same 22.05 kHz espeak-ng output, made 44.1 kHz by
  // sox): the mono mix is 0.75 x the phrase. Its reference is speech_16k.wav (the same output, made 16 kHz by
  // sox): two high-quality resamplers, which differ only near 8 kHz. Measured: SNR 76.1 dB.
  const std::vector<float> x = decode_asset("speech_44k1_stereo.wav");
  EXPECT_NEAR(double(x.size()), 16000.0, 1.0);
  EXPECT_TRUE(in_unit_range(x));
  const std::vector<float> ref = speech_reference();
  const double snr = test::snr_db(ref, x, 0.75);
  std::printf("[audio] 44.1 kHz stereo -> 16 kHz mono vs 0.75 x speech_16k: SNR %.2f dB\n", snr);
  EXPECT_GT(snr, 70.0);
}

TEST(audio_decode, resampling_keeps_frequency_and_amplitude) {
  // 1 s of a 1 kHz tone, left amplitude 0.6, right 0.2 (mono mix 0.4), at common rates. Away from the edges the
  // 16 kHz output must be the same tone: soxr HQ's passband is flat to well under 0.1 dB at 1 kHz.
  for (int rate : {8000, 11025, 22050, 32000, 44100, 48000, 96000}) {
    for (int channels : {1, 2}) {
      SCOPED_TRACE("rate " + std::to_string(rate) + ", channels " + std::to_string(channels));
      const auto l = test::tone(1000.0, 0.6, rate, size_t(rate)), r = test::tone(1000.0, 0.2, rate, size_t(rate));
      wav_header h;
      h.sample_rate = rate;
      h.channels = static_cast<uint16_t>(channels);
      h.format_tag = 3, h.bits = 32;  // float: no quantization in the input
      const std::vector<float> x = decode(make_wav(channels == 2 ? test::interleave(l, r) : l, h));
      EXPECT_NEAR(double(x.size()), 16000.0, 1.0);
      const test::tone_fit fit = test::fit_tone(x, 200, 15800, 1000.0, 16000);
      EXPECT_NEAR(fit.amplitude, channels == 2 ? 0.4 : 0.6, 2e-3);
      EXPECT_LT(fit.residual_rms, 1e-3);
      // 1 Hz off is already 30x that residual: the frequency is right.
      EXPECT_GT(test::fit_tone(x, 200, 15800, 1001.0, 16000).residual_rms, 0.03);
    }
  }
}

TEST(audio_resample, streaming_equals_one_shot_and_equal_rates_copy) {
  const auto in = test::tone(440.0, 0.5, 44100, 30000);
  const std::vector<float> whole = resample_mono(in.data(), in.size(), 44100, 16000);
  audio_resampler r(44100, 16000);
  std::vector<float> pieces;
  for (size_t at = 0; at < in.size(); at += 777) r.push(in.data() + at, std::min<size_t>(777, in.size() - at), pieces);
  r.finish(pieces);
  ASSERT_EQ(pieces.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(pieces[i], whole[i], 1e-6f) << i;
  EXPECT_EQ(resample_mono(in.data(), in.size(), 16000, 16000), in);
}

TEST(audio_decode, sample_formats_and_float_specials) {
  const auto t = test::tone(440.0, 0.5, 16000, 4000);
  for (uint16_t bits : {8, 16, 24, 32}) {
    SCOPED_TRACE("bits " + std::to_string(bits));
    wav_header h;
    h.bits = bits;
    const std::vector<float> x = decode(make_wav(t, h));
    ASSERT_EQ(x.size(), t.size());
    const float step = bits == 8 ? 1.0f / 128 : 1.0f / 32768;  // the quantization this test's writer applies
    for (size_t i = 0; i < t.size(); ++i) ASSERT_NEAR(x[i], t[i], step) << i;
  }
  // Float files may hold anything: NaN becomes 0, the rest is clamped to [-1, 1].
  wav_header h;
  h.format_tag = 3, h.bits = 32;
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = decode(make_wav({0.25f, std::nanf(""), 2.0f, -inf, inf, -3.5f, -0.5f}, h));
  EXPECT_EQ(x, (std::vector<float>{0.25f, 0.0f, 1.0f, -1.0f, 1.0f, -1.0f, -0.5f}));
}

TEST(audio_decode, mp3_with_id3_tag_and_with_junk_in_front) {
  const std::vector<uint8_t> mp3 = read_asset("speech.mp3");
  const std::vector<float> plain = decode(mp3);
  // An ID3v2.3 tag with one TIT2 frame ("open settings"), as taggers write it in front of the first frame.
  std::vector<uint8_t> tagged = {'I', 'D', '3', 3, 0, 0, 0, 0, 0, 24, 'T', 'I', 'T', '2', 0, 0, 0, 14, 0, 0, 0};
  for (char c : std::string("open settings")) tagged.push_back(static_cast<uint8_t>(c));
  tagged.insert(tagged.end(), mp3.begin(), mp3.end());
  ASSERT_EQ(id3v2_tag_size(tagged.data(), tagged.size()), 34u);
  EXPECT_EQ(sniff_audio_format(tagged.data(), tagged.size()), audio_format::mp3);
  EXPECT_EQ(decode(tagged), plain);

  // 3000 bytes of junk: unrecognized by content; found when the hint says mp3 (and the hint may be a MIME type).
  std::vector<uint8_t> junk(3000, 0x55);
  junk.insert(junk.end(), mp3.begin(), mp3.end());
  EXPECT_NE(decode_error(junk).find("unrecognized format"), std::string::npos);
  EXPECT_EQ(decode(junk, {}, "mp3"), plain);
  EXPECT_EQ(decode(junk, {}, "audio/mpeg"), plain);
  EXPECT_NE(decode_error(junk, {}, "wav").find("the request names it 'wav', but the content is not that"),
            std::string::npos);
}

TEST(audio_decode, mp3_without_length_tag_is_read_to_its_end) {
  // speech.mp3 without its first frame (the LAME "Info" frame: 288 bytes at 64 kbit/s, 16 kHz). The length is then
  // found by scanning the frames, and without the tag's delay/padding to trim, every sample of every frame comes
  // out: (file size - 288) / 288 frames of 576 samples (MPEG-2 layer III), all of them decoded.
  const std::vector<uint8_t> mp3 = read_asset("speech.mp3");
  const mpeg_frame_header h = mpeg_parse_frame_header(mp3.data(), mp3.size());
  ASSERT_TRUE(h.valid);
  EXPECT_EQ(h.version, 20);
  EXPECT_EQ(h.layer, 3);
  EXPECT_EQ(h.bitrate_kbps, 64);
  EXPECT_EQ(h.sample_rate, 16000);
  EXPECT_TRUE(h.mono);
  EXPECT_EQ(h.frame_bytes, 288u);
  EXPECT_TRUE(mpeg_has_length_tag(mp3.data(), mp3.size()));
  const std::vector<uint8_t> untagged(mp3.begin() + 288, mp3.end());
  EXPECT_FALSE(mpeg_has_length_tag(untagged.data(), untagged.size()));
  const audio_info info = probe_audio(untagged.data(), untagged.size());
  EXPECT_EQ(info.frames, int64_t((mp3.size() - 288) / 288) * 576);
  EXPECT_EQ(int64_t(decode(untagged).size()), info.frames);
}

// ------------------------------------------------------------------------------------------------- limits

TEST(audio_limits, checked_before_decoding) {
  const std::vector<uint8_t> speech = read_asset("speech_16k.wav"), stereo = read_asset("speech_44k1_stereo.wav");
  audio_limits lim;
  lim.max_bytes = 1000;
  EXPECT_NE(decode_error(speech, lim).find("83398 bytes, over the limit of 1000"), std::string::npos);
  lim = {};
  lim.max_seconds = 2.5;
  EXPECT_NE(decode_error(speech, lim).find("the audio is 2.60481 s long, over the limit of 2.5 s"), std::string::npos);
  for (const char* f : {"speech.mp3", "speech.ogg", "speech.opus", "speech.flac"})
    EXPECT_NE(decode_error(read_asset(f), lim).find("over the limit of 2.5 s"), std::string::npos) << f;
  lim = {};
  lim.max_channels = 1;
  EXPECT_NE(decode_error(stereo, lim).find("2 channels, the limit is 1"), std::string::npos);
  lim = {};
  lim.max_sample_rate = 22050;
  EXPECT_NE(decode_error(stereo, lim).find("sample rate 44100 Hz is outside the accepted 1000..22050 Hz"),
            std::string::npos);
  wav_header h;
  h.sample_rate = 400;
  EXPECT_NE(decode_error(make_wav(test::tone(50, 0.5, 400, 400), h)).find("sample rate 400 Hz"), std::string::npos);
  h.sample_rate = 768000;
  EXPECT_NE(decode_error(make_wav(test::tone(50, 0.5, 768000, 4000), h)).find("sample rate 768000 Hz"),
            std::string::npos);
  lim = {};
  lim.max_decoded_samples = 50000;  // the stereo file holds 88200
  EXPECT_NE(decode_error(stereo, lim).find("1 s of 2 channels at 44100 Hz is over the limit of 50000 decoded samples"),
            std::string::npos);
  h = {};
  h.sample_rate = 48000;  // one sample at 48 kHz is a third of one at 16 kHz
  EXPECT_NE(decode_error(make_wav({0.5f}, h)).find("too short: 1 samples at 48000 Hz make no sample at 16 kHz"),
            std::string::npos);
  h = {};
  h.channels = 9;
  EXPECT_NE(decode_error(make_wav(std::vector<float>(9 * 100, 0.1f), h)).find("9 channels, the limit is 8"),
            std::string::npos);
}

TEST(audio_limits, probe_applies_them_too) {
  const std::vector<uint8_t> speech = read_asset("speech.mp3");
  audio_limits lim;
  lim.max_seconds = 1.0;
  EXPECT_THROW(probe_audio(speech.data(), speech.size(), lim), invalid_request);
  EXPECT_THROW(probe_audio(nullptr, 0), invalid_request);
}

// ----------------------------------------------------------------------------------------- malformed input

TEST(audio_malformed, committed_bad_files) {
  struct bad {
    const char* file;
    const char* message;
  };
  for (const bad& b :
       {bad{"truncated_speech.wav",
            "audio (WAV): truncated file: the data chunk declares 83354 bytes but "
            "the file holds 19956"},
        bad{"header_only.wav", "audio (WAV): truncated file: the data chunk declares 83354 bytes"},
        bad{"truncated_speech.flac",
            "audio (FLAC): truncated file: the header declares 41677 samples, the data "
            "holds 12288"},
        bad{"truncated_speech.ogg",
            "audio (OGG): truncated file: the last page is cut off after 454 bytes "
            "of 4192"},
        bad{"truncated_speech.opus", "audio (OGG): truncated file: the last page is cut off after"},
        bad{"truncated_speech.mp3", "audio (MP3): truncated file: the header declares 41677 samples"},
        bad{"garbage.bin", "audio: unrecognized format; supported: WAV, FLAC, OGG (Vorbis, Opus), MP3"}}) {
    SCOPED_TRACE(b.file);
    const std::string msg = decode_error(read_asset(b.file));
    EXPECT_NE(msg.find(b.message), std::string::npos) << msg;
  }
}

TEST(audio_malformed, ogg_cut_at_a_page_boundary_and_other_codecs) {
  // Walk the pages (RFC 3533: 27-byte header, segment count at 26, lacing values) and cut after the next-to-last
  // one: every page is whole, but the stream never ends.
  for (const char* file : {"speech.ogg", "speech.opus"}) {
    SCOPED_TRACE(file);
    const std::vector<uint8_t> ogg = read_asset(file);
    std::vector<size_t> ends;
    for (size_t pos = 0; pos + 27 <= ogg.size();) {
      size_t len = 27 + ogg[pos + 26];
      for (size_t i = 0; i < ogg[pos + 26]; ++i) len += ogg[pos + 27 + i];
      pos += len;
      ends.push_back(pos);
    }
    ASSERT_EQ(ends.back(), ogg.size());
    ASSERT_GE(ends.size(), 3u);
    const std::vector<uint8_t> cut(ogg.begin(), ogg.begin() + ends[ends.size() - 2]);
    EXPECT_EQ(decode_error(cut), "audio (OGG): truncated file: the last page is not flagged end-of-stream");
    // Junk after the last page is not a truncation.
    std::vector<uint8_t> junk = ogg;
    junk.insert(junk.end(), 100, 0x20);
    EXPECT_EQ(decode(junk), decode(ogg));
  }
  // An Ogg stream of another codec: the identification header names it, once the page checksum holds.
  std::vector<uint8_t> speex = read_asset("speech.ogg");
  std::memcpy(speex.data() + 28, "Speex   ", 8);
  EXPECT_EQ(decode_error(speex), "audio (OGG): the first page is damaged or holds an unknown codec; supported: WAV, "
                                 "FLAC, OGG (Vorbis, Opus), MP3");
  const size_t first_page = 27 + speex[26] + speex[27];  // one segment
  uint32_t crc = 0;  // CRC-32, polynomial 0x04c11db7, MSB first, over the page with its CRC field zeroed
  std::memset(speex.data() + 22, 0, 4);
  for (size_t i = 0; i < first_page; ++i) {
    crc ^= uint32_t(speex[i]) << 24;
    for (int b = 0; b < 8; ++b) crc = crc & 0x80000000u ? (crc << 1) ^ 0x04c11db7u : crc << 1;
  }
  for (int i = 0; i < 4; ++i) speex[22 + i] = static_cast<uint8_t>(crc >> (8 * i));
  EXPECT_EQ(decode_error(speex),
            "audio (OGG): the stream is Speex, not Vorbis or Opus; supported: WAV, FLAC, OGG (Vorbis, Opus), MP3");
  // Found by fuzz_audio: an Opus first page with a bad checksum, which libogg skips, in front of a Vorbis stream.
  // libsndfile took it for Vorbis and leaked the header state of its malformed-Vorbis path.
  const std::vector<uint8_t> hidden =
      test::read_bytes(test::audio_asset("../../fuzz/regressions/audio/ogg_damaged_opus_page_hides_vorbis"));
  EXPECT_NE(decode_error(hidden).find("audio (OGG): "), std::string::npos);
  // Two logical streams (a chained file) are refused before any decoder sees them.
  std::vector<uint8_t> chained = read_asset("speech.ogg");
  const std::vector<uint8_t> second = test::read_bytes(test::audio_asset("../../fuzz/corpus/audio/vorbis_16k.ogg"));
  chained.insert(chained.end(), second.begin(), second.end());
  EXPECT_EQ(decode_error(chained), "audio (OGG): chained or multiplexed Ogg streams are not supported");
}

TEST(audio_malformed, empty_and_unsupported) {
  EXPECT_EQ(decode_error({}), "audio: empty file");
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  EXPECT_EQ(decode_error(bytes(std::string("\0\0\0\x20" "ftypM4A \0\0\0\0", 16))),
            "audio (MP4/M4A): this format is not supported; supported: WAV, FLAC, OGG (Vorbis, Opus), MP3");
  EXPECT_NE(decode_error(bytes("\x1a\x45\xdf\xa3 webm")).find("WebM/Matroska"), std::string::npos);
  EXPECT_NE(decode_error(bytes(std::string("FORM\0\0\0\x10" "AIFF", 12))).find("AIFF"), std::string::npos);
  EXPECT_NE(decode_error(bytes("not audio"), {}, "m4a").find("'m4a': MP4/M4A is not supported"), std::string::npos);
  EXPECT_NE(decode_error(bytes("not audio"), {}, "speech.flac").find("but the content is not that"), std::string::npos);
}

TEST(audio_malformed, wav_headers_that_lie) {
  const std::vector<float> t = test::tone(440, 0.5, 16000, 1600);
  auto with = [&](auto edit) {
    wav_header h;
    edit(h);
    return make_wav(t, h);
  };
  // Refused, each with a message.
  const std::pair<const char*, std::vector<uint8_t>> refused[] = {
      {"zero channels", with([](wav_header& h) { h.channels = 0; })},
      {"1000 channels", with([](wav_header& h) { h.channels = 1000; })},
      {"zero rate", with([](wav_header& h) { h.sample_rate = 0; })},
      {"4 GHz rate", with([](wav_header& h) { h.sample_rate = 4000000000u; })},
      {"zero bits", with([](wav_header& h) { h.bits = 0; })},
      {"data past the end", with([](wav_header& h) { h.data_bytes = 0x7FFFFFF0; })},
      {"unknown codec", with([](wav_header& h) { h.format_tag = 0x1234; })},
      {"float with 16 bits", with([](wav_header& h) { h.format_tag = 3; })},
  };
  for (const auto& [name, bytes] : refused) {
    SCOPED_TRACE(name);
    const std::string msg = decode_error(bytes);
    EXPECT_EQ(msg.rfind("audio (WAV): ", 0), 0u) << msg;
  }
  // Inconsistent but readable: libsndfile decodes these its own way (it derives the frame size from the bit
  // depth, not from block align). Whatever comes out must be samples in [-1, 1] or an invalid_request.
  for (auto edit : {+[](wav_header& h) { h.bits = 13; }, +[](wav_header& h) { h.block_align = 0; },
                    +[](wav_header& h) { h.block_align = 60000; }}) {
    try {
      EXPECT_TRUE(in_unit_range(decode(with(edit))));
    } catch (const invalid_request& e) {
      EXPECT_EQ(std::string(e.what()).rfind("audio (WAV): ", 0), 0u) << e.what();
    }
  }
  // Cut inside the header: every length from 0 to the data must fail cleanly.
  const std::vector<uint8_t> good = make_wav(t);
  for (size_t n = 0; n < 46; ++n) {
    SCOPED_TRACE(n);
    decode_error(std::vector<uint8_t>(good.begin(), good.begin() + n));
  }
}

TEST(audio_malformed, mutated_files_never_crash) {
  // Deterministic byte flips and cuts in every valid asset: each either decodes to samples in [-1, 1] or is an
  // invalid_request; nothing else may escape (the sanitized build runs this too).
  std::mt19937 rng(1234);
  for (const char* file : {"speech_16k.wav", "speech.flac", "speech.ogg", "speech.opus", "speech.mp3",
                           "speech_44k1_stereo.wav"}) {
    SCOPED_TRACE(file);
    const std::vector<uint8_t> good = read_asset(file);
    for (int trial = 0; trial < 24; ++trial) {
      std::vector<uint8_t> b = good;
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < flips; ++i) {
        // Half the flips hit the first 512 bytes, where the headers are.
        const size_t at = rng() % 2 ? rng() % std::min<size_t>(512, b.size()) : rng() % b.size();
        b[at] ^= static_cast<uint8_t>(1 + rng() % 255);
      }
      if (trial % 3 == 0) b.resize(b.size() * (rng() % 100) / 100);
      try {
        const std::vector<float> x = decode(b);
        EXPECT_TRUE(in_unit_range(x));
        EXPECT_LT(x.size(), 16000u * 20);
      } catch (const invalid_request& e) {
        EXPECT_EQ(std::string(e.what()).rfind("audio", 0), 0u) << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace autoglm
