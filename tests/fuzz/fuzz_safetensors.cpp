// libFuzzer target: the safetensors header parser and the index parser must reject any input with an
// Error, never crash, hang or read out of bounds.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    tqlm::SafetensorsHeader h = tqlm::parse_safetensors(data, size, "fuzz");
    // Touch every byte of every tensor view: views must lie inside the buffer.
    volatile uint8_t sink = 0;
    for (const auto& t : h.tensors)
      for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
    (void)sink;
  } catch (const tqlm::Error&) {
  }
  try {
    tqlm::parse_safetensors_index(std::string(reinterpret_cast<const char*>(data), size), "fuzz-index");
  } catch (const tqlm::Error&) {
  }
  return 0;
}
