// config.json / generation_config.json validation: every field that sizes memory or indexes a table is range
// checked and a bad value is an error naming the file and the key; the checkpoints we ship still load; a
// config file that is a FIFO, a directory or oversized is refused at once.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/glm4v/config.h"
#include "model_files_util.h"

using namespace autoglm;
using namespace autoglm::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The tiny fixture's config with one value replaced, in a scratch dir beside its generation_config.json.
std::string dir_with(const std::string& pointer, const json& value, const std::string& file = "config.json") {
  const std::string dir = scratch_dir();
  json cfg = read_json(tiny_model_dir() + "/config.json");
  json gen = read_json(tiny_model_dir() + "/generation_config.json");
  set_at(file == "config.json" ? cfg : gen, pointer, value);
  write_text(dir + "/config.json", cfg.dump());
  write_text(dir + "/generation_config.json", gen.dump());
  return dir;
}

std::string load_error(const std::string& dir) {
  try {
    glm4v::config::load(dir);
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

struct bad_case {
  std::string pointer;  // JSON pointer of the value to replace
  json value;
  std::string expect;   // text the error must contain (after "<file>: ")
  std::string file = "config.json";
};

// The GLM-4.1V-9B-Thinking config.json as Hugging Face ships it (transformers v4 layout, spec section 1).
json real_9b_config() {
  return json::parse(R"({
    "architectures": ["Glm4vForConditionalGeneration"], "model_type": "glm4v", "torch_dtype": "bfloat16",
    "image_start_token_id": 151339, "image_end_token_id": 151340, "video_start_token_id": 151341,
    "video_end_token_id": 151342, "image_token_id": 151343, "video_token_id": 151344,
    "tie_word_embeddings": false,
    "text_config": {
      "vocab_size": 151552, "hidden_size": 4096, "intermediate_size": 13696, "num_hidden_layers": 40,
      "num_attention_heads": 32, "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-05,
      "rope_theta": 10000, "partial_rotary_factor": 0.5, "max_position_embeddings": 65536,
      "attention_bias": true, "attention_dropout": 0.0, "pad_token_id": 151329,
      "eos_token_id": [151329, 151336, 151338], "image_token_id": null, "video_token_id": null,
      "rope_scaling": {"type": "default", "mrope_section": [8, 12, 12]}, "model_type": "glm4v_text"
    },
    "vision_config": {
      "depth": 24, "hidden_size": 1536, "num_heads": 12, "patch_size": 14, "temporal_patch_size": 2,
      "spatial_merge_size": 2, "image_size": 336, "in_channels": 3, "out_hidden_size": 4096,
      "intermediate_size": 13696, "hidden_act": "silu", "rms_norm_eps": 1e-05, "attention_bias": false,
      "attention_dropout": 0.0, "initializer_range": 0.02, "model_type": "glm4v"
    }
  })");
}

}  // namespace

TEST(model_config, shipped_checkpoints_load) {
  for (const std::string& dir : {tiny_model_dir(), std::string(AUTOGLM_SOURCE_DIR) + "/models/demo"}) {
    glm4v::config c = glm4v::config::load(dir);
    EXPECT_EQ(c.text.vocab_size, 1503) << dir;
    EXPECT_EQ(c.text.max_position_embeddings, 4096) << dir;
    EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{1456, 1463, 1465})) << dir;
    EXPECT_TRUE(c.vision.present) << dir;
  }
}

TEST(model_config, real_9b_config_loads) {
  const std::string dir = scratch_dir();
  write_text(dir + "/config.json", real_9b_config().dump(2));
  write_text(dir + "/generation_config.json",
             R"({"do_sample": true, "temperature": 0.8, "eos_token_id": [151329, 151336, 151338], "pad_token_id": 151329})");
  glm4v::config c = glm4v::config::load(dir);
  EXPECT_EQ(c.text.vocab_size, 151552);
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_EQ(c.text.rotary_dim, 64);
  EXPECT_EQ(c.text.max_position_embeddings, 65536);
  EXPECT_EQ(c.vision.head_dim, 128);
  EXPECT_EQ(c.image_token_id, 151343);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{151329, 151336, 151338}));
}

TEST(model_config, bad_values_name_the_file_and_the_key) {
  const json big = json(uint64_t(1) << 40);
  const std::vector<bad_case> cases = {
      // The values of the report, then every sizing field.
      {"/text_config/max_position_embeddings", 0, "text_config.max_position_embeddings must be between 1 and 16777216, got 0"},
      {"/text_config/max_position_embeddings", -1, "text_config.max_position_embeddings must be between 1 and 16777216, got -1"},
      {"/text_config/max_position_embeddings", int64_t(1) << 31, "text_config.max_position_embeddings must be between 1 and 16777216, got 2147483648"},
      {"/text_config/max_position_embeddings", big, "text_config.max_position_embeddings must be between 1 and 16777216, got 1099511627776"},
      {"/text_config/max_position_embeddings", "4096", "text_config.max_position_embeddings must be an integer"},
      {"/text_config/max_position_embeddings", 4096.5, "text_config.max_position_embeddings must be an integer"},
      {"/text_config/vocab_size", 0, "text_config.vocab_size must be between 1 and 16777216"},
      {"/text_config/vocab_size", json(uint64_t(18446744073709551615ull)), "text_config.vocab_size must be between 1 and 16777216, got 18446744073709551615"},
      {"/text_config/vocab_size", nullptr, "text_config.vocab_size is missing"},
      {"/text_config/hidden_size", 0, "text_config.hidden_size must be between 1 and 65536"},
      {"/text_config/hidden_size", 1 << 17, "text_config.hidden_size must be between 1 and 65536"},
      {"/text_config/hidden_size", 130, "text_config.hidden_size (130) must be a multiple of num_attention_heads (4)"},
      {"/text_config/num_hidden_layers", 0, "text_config.num_hidden_layers must be between 1 and 1024"},
      {"/text_config/num_hidden_layers", 100000, "text_config.num_hidden_layers must be between 1 and 1024"},
      {"/text_config/num_attention_heads", 0, "text_config.num_attention_heads must be between 1 and 1024"},
      {"/text_config/num_key_value_heads", 3, "text_config.num_key_value_heads (3) must divide num_attention_heads (4)"},
      {"/text_config/num_key_value_heads", 8, "text_config.num_key_value_heads must be between 1 and 4"},
      {"/text_config/num_key_value_heads", 0, "text_config.num_key_value_heads must be between 1 and 4"},
      {"/text_config/head_dim", 0, "text_config.head_dim must be between 1 and 1024"},
      {"/text_config/head_dim", 4096, "text_config.head_dim must be between 1 and 1024"},
      {"/text_config/intermediate_size", 0, "text_config.intermediate_size must be between 1 and 262144"},
      {"/text_config/intermediate_size", int64_t(1) << 40, "text_config.intermediate_size must be between 1 and 262144"},
      {"/text_config/partial_rotary_factor", 0, "text_config.partial_rotary_factor must be greater than 0"},
      {"/text_config/rope_parameters/partial_rotary_factor", -0.5, "text_config.rope_parameters.partial_rotary_factor must be greater than 0"},
      {"/text_config/rope_parameters/partial_rotary_factor", 1.5, "text_config.rope_parameters.partial_rotary_factor must be greater than 0 and at most 1"},
      {"/text_config/rope_parameters/partial_rotary_factor", 0.28125, "text_config.partial_rotary_factor of 0.28125 times head_dim 32 gives 9 rotary dimensions"},
      {"/text_config/rope_parameters/rope_theta", 0, "text_config.rope_parameters.rope_theta must be greater than 0"},
      {"/text_config/rope_parameters/rope_theta", -10000.0, "text_config.rope_parameters.rope_theta must be greater than 0"},
      {"/text_config/rope_parameters/rope_theta", 1e300, "text_config.rope_parameters.rope_theta must be greater than 0 and at most"},
      {"/text_config/rope_parameters/rope_theta", "10000", "text_config.rope_parameters.rope_theta must be a number"},
      {"/text_config/rope_parameters/rope_type", "yarn", "text_config.rope_parameters.rope_type 'yarn' is not supported"},
      {"/text_config/rope_parameters", 5, "text_config.rope_parameters must be an object"},
      {"/text_config/rope_parameters", nullptr, "text_config.rope_parameters is missing"},
      {"/text_config/rms_norm_eps", 0, "text_config.rms_norm_eps must be greater than 0 and at most 1, got 0"},
      {"/text_config/rms_norm_eps", -1e-5, "text_config.rms_norm_eps must be greater than 0"},
      {"/text_config/rms_norm_eps", 1e-60, "text_config.rms_norm_eps must be greater than 0"},  // 0 as a float
      {"/text_config/rms_norm_eps", 2, "text_config.rms_norm_eps must be greater than 0 and at most 1, got 2"},
      {"/text_config/rope_parameters/mrope_section", json::array({2, 3, 4}), "text_config.rope_parameters.mrope_section sums to 9 but the rotary dimension 16 has 8 frequency pairs"},
      {"/text_config/rope_parameters/mrope_section", json::array({2, 3}), "text_config.rope_parameters.mrope_section must be a list of 3 integers"},
      // 2^32 + 2 would wrap to 2 as an int32 and sum correctly.
      {"/text_config/rope_parameters/mrope_section", json::array({(int64_t(1) << 32) + 2, 3, 3}), "text_config.rope_parameters.mrope_section[0] must be between 0 and 8"},
      {"/text_config/rope_parameters/mrope_section", json::array({-1, 5, 4}), "text_config.rope_parameters.mrope_section[0] must be between 0 and 8, got -1"},
      {"/text_config/rope_parameters/mrope_section", nullptr, "text_config.rope_parameters.mrope_section is missing"},
      {"/text_config/hidden_act", "gelu", "text_config.hidden_act 'gelu' is not supported"},
      {"/text_config/hidden_act", 7, "text_config.hidden_act must be a string"},
      {"/text_config/attention_bias", "yes", "text_config.attention_bias must be true or false"},
      // Token ids: inside the vocabulary (1503 rows), never wrapped.
      {"/text_config/eos_token_id", 1503, "text_config.eos_token_id must be between 0 and 1502, got 1503"},
      {"/text_config/eos_token_id", -1, "text_config.eos_token_id must be between 0 and 1502, got -1"},
      {"/text_config/eos_token_id", json::array({1456, 99999}), "text_config.eos_token_id[1] must be between 0 and 1502, got 99999"},
      {"/text_config/eos_token_id", (int64_t(1) << 32) + 1456, "text_config.eos_token_id must be between 0 and 1502, got 4294968752"},
      {"/text_config/eos_token_id", "1456", "text_config.eos_token_id must be an integer"},
      {"/text_config/eos_token_id", json(std::vector<int>(300, 1)), "text_config.eos_token_id lists 300 ids, more than the limit of 256"},
      {"/eos_token_id", 5000, "eos_token_id must be between 0 and 1502, got 5000"},
      {"/text_config/pad_token_id", 1503, "text_config.pad_token_id must be between 0 and 1502"},
      {"/image_token_id", 1503, "image_token_id must be between 0 and 1502, got 1503"},
      {"/image_token_id", -5, "image_token_id must be between 0 and 1502, got -5"},
      {"/image_token_id", nullptr, "image_token_id is missing"},
      {"/video_token_id", 99999, "video_token_id must be between 0 and 1502"},
      {"/image_start_token_id", 1 << 30, "image_start_token_id must be between 0 and 1502"},
      {"/image_end_token_id", -2, "image_end_token_id must be between 0 and 1502"},
      {"/video_start_token_id", 2000, "video_start_token_id must be between 0 and 1502"},
      {"/video_end_token_id", 2000, "video_end_token_id must be between 0 and 1502"},
      // The vision tower.
      {"/vision_config/depth", 0, "vision_config.depth must be between 1 and 1024"},
      {"/vision_config/depth", 1 << 20, "vision_config.depth must be between 1 and 1024"},
      {"/vision_config/hidden_size", 0, "vision_config.hidden_size must be between 1 and 65536"},
      {"/vision_config/hidden_size", 65, "vision_config.hidden_size (65) must be a multiple of num_heads (2)"},
      {"/vision_config/hidden_size", 68, "vision_config.hidden_size / num_heads gives a head dimension of 34"},
      {"/vision_config/num_heads", 0, "vision_config.num_heads must be between 1 and 1024"},
      {"/vision_config/num_heads", 3, "vision_config.hidden_size (64) must be a multiple of num_heads (3)"},
      {"/vision_config/patch_size", 0, "vision_config.patch_size must be between 1 and 1024"},
      {"/vision_config/patch_size", 5000, "vision_config.patch_size must be between 1 and 1024"},
      {"/vision_config/temporal_patch_size", 0, "vision_config.temporal_patch_size must be between 1 and 16"},
      {"/vision_config/temporal_patch_size", 17, "vision_config.temporal_patch_size must be between 1 and 16"},
      {"/vision_config/spatial_merge_size", 0, "vision_config.spatial_merge_size must be between 1 and 16"},
      {"/vision_config/image_size", 10, "vision_config.image_size must be between 14 and 16384, got 10"},
      {"/vision_config/image_size", 1 << 20, "vision_config.image_size must be between 14 and 16384"},
      {"/vision_config/in_channels", 4, "vision_config.in_channels must be 3 (the image processor produces RGB patches), got 4"},
      {"/vision_config/out_hidden_size", 0, "vision_config.out_hidden_size must be between 1 and 65536"},
      {"/vision_config/out_hidden_size", 256, "vision_config.out_hidden_size (256) must equal text_config.hidden_size (128)"},
      {"/vision_config/intermediate_size", 0, "vision_config.intermediate_size must be between 1 and 262144"},
      {"/vision_config/intermediate_size", nullptr, "vision_config.intermediate_size is missing"},
      {"/vision_config/rms_norm_eps", 0, "vision_config.rms_norm_eps must be greater than 0"},
      {"/vision_config/rope_parameters/rope_theta", -1, "vision_config.rope_parameters.rope_theta must be greater than 0"},
      {"/vision_config/hidden_act", "relu", "vision_config.hidden_act 'relu' is not supported"},
      {"/vision_config", "x", "vision_config must be an object"},
      {"/text_config", 5, "text_config must be an object"},
      {"/text_config", nullptr, "text_config is missing"},
      {"/architectures", "Glm4v", "architectures must be a list of strings"},
      // generation_config.json ids.
      {"/eos_token_id", 1503, "eos_token_id must be between 0 and 1502, got 1503", "generation_config.json"},
      {"/eos_token_id", json::array({1456, -7}), "eos_token_id[1] must be between 0 and 1502, got -7", "generation_config.json"},
      {"/pad_token_id", 1 << 30, "pad_token_id must be between 0 and 1502", "generation_config.json"},
      {"/bos_token_id", -1, "bos_token_id must be between 0 and 1502", "generation_config.json"},
  };
  for (const bad_case& c : cases) {
    const std::string dir = dir_with(c.pointer, c.value, c.file);
    const std::string msg = load_error(dir);
    const std::string want = dir + "/" + c.file + ": " + c.expect;
    EXPECT_NE(msg.find(want), std::string::npos) << c.file << " " << c.pointer << " = " << c.value.dump() << "\n  got:  " << msg
                                                 << "\n  want: " << want;
  }
}

TEST(model_config, absent_optional_keys_take_their_defaults) {
  // null and absent are the same: HF writes null for unset ids and sizes.
  for (const char* pointer : {"/text_config/max_position_embeddings", "/video_token_id", "/text_config/eos_token_id"}) {
    const std::string dir = dir_with(pointer, nullptr);
    EXPECT_EQ(load_error(dir), "") << pointer;
  }
  glm4v::config c = glm4v::config::load(dir_with("/text_config/max_position_embeddings", nullptr));
  EXPECT_EQ(c.text.max_position_embeddings, 32768);
  // The eos ids then come from generation_config.json alone.
  c = glm4v::config::load(dir_with("/text_config/eos_token_id", nullptr));
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{1456, 1463, 1465}));
}

TEST(model_config, config_files_must_be_small_regular_json_objects) {
  const std::string dir = scratch_dir();
  fs::copy_file(tiny_model_dir() + "/config.json", dir + "/config.json");

  // generation_config.json as a FIFO: refused at once (it blocked the load forever).
  make_fifo(dir + "/generation_config.json");
  std::string msg = error_of_guarded([&] { glm4v::config::load(dir); }, dir + "/generation_config.json");
  EXPECT_NE(msg.find(dir + "/generation_config.json: not a regular file (a named pipe)"), std::string::npos) << msg;
  fs::remove(dir + "/generation_config.json");

  // config.json as a FIFO.
  fs::rename(dir + "/config.json", dir + "/config.json.saved");
  make_fifo(dir + "/config.json");
  msg = error_of_guarded([&] { glm4v::config::load(dir); }, dir + "/config.json");
  EXPECT_NE(msg.find(dir + "/config.json: not a regular file (a named pipe)"), std::string::npos) << msg;
  fs::remove(dir + "/config.json");

  // A directory, a dangling symlink, a missing file.
  fs::create_directory(dir + "/config.json");
  EXPECT_NE(load_error(dir).find("config.json: not a regular file (a directory)"), std::string::npos);
  fs::remove(dir + "/config.json");
  EXPECT_NE(load_error(dir).find("config.json: cannot open"), std::string::npos);
  fs::rename(dir + "/config.json.saved", dir + "/config.json");
  fs::create_symlink(dir + "/nowhere.json", dir + "/generation_config.json");
  EXPECT_NE(load_error(dir).find("generation_config.json: cannot open"), std::string::npos) << load_error(dir);
  fs::remove(dir + "/generation_config.json");
  EXPECT_EQ(load_error(dir), "");  // no generation_config.json at all is fine

  // Oversized (sparse: costs no disk), deeply nested, not an object, not JSON.
  {
    std::ofstream(dir + "/generation_config.json").close();
    fs::resize_file(dir + "/generation_config.json", (uint64_t(1) << 20) + 1);
    msg = load_error(dir);
    EXPECT_NE(msg.find("generation_config.json: 1048577 bytes, more than the limit of 1048576"), std::string::npos) << msg;
  }
  write_text(dir + "/generation_config.json", "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}");
  msg = load_error(dir);
  EXPECT_NE(msg.find("generation_config.json: not valid JSON"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nesting"), std::string::npos) << msg;
  write_text(dir + "/generation_config.json", "[1, 2]");
  EXPECT_NE(load_error(dir).find("generation_config.json: must hold a JSON object"), std::string::npos) << load_error(dir);
  write_text(dir + "/generation_config.json", "{\"eos_token_id\": 1e400}");
  EXPECT_NE(load_error(dir).find("generation_config.json: not valid JSON"), std::string::npos) << load_error(dir);
  fs::remove(dir + "/generation_config.json");
  write_text(dir + "/config.json", "5");
  EXPECT_NE(load_error(dir).find("config.json: must hold a JSON object"), std::string::npos) << load_error(dir);
}
