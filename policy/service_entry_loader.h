#pragma once

// Reading ServiceEntry and WorkloadEntry manifests (networking.istio.io v1, v1beta1,
// v1alpha3) with the checks of Istio's validation, into the model. Called by the manifest
// loader for those kinds. Thread: the reader's.

#include <string>

#include "policy/yaml_reader.h"

namespace palisade::policy {

void readServiceEntry(YamlReader& reader, const YAML::Node& doc, const std::string& api);
void readWorkloadEntry(YamlReader& reader, const YAML::Node& doc, const std::string& api);

}  // namespace palisade::policy
