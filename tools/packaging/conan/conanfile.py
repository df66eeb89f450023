# Conan 2 recipe for requests_engine, in the shape of ConanCenter's header-only recipes
# (cpp-httplib, nlohmann_json). From a clone:
#   conan create tools/packaging/conan --build=missing
# then `requests_engine/0.1.0` in a consumer's requires, and in its CMakeLists.txt:
#   find_package(requests_engine CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE requests_engine::requests_engine)
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class RequestsEngineConan(ConanFile):
    name = "requests_engine"
    version = "0.1.0"
    description = ("LLM batch inference over HTTP APIs in one C++17 header: concurrency, rate "
                   "limits, retries, a disk cache, cost")
    license = "MIT"
    topics = ("llm", "openai", "anthropic", "batch", "http", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    @property
    def _clone(self):
        # The recipe sits in tools/packaging/conan/ of the clone it packages.
        return os.path.join(self.recipe_folder, os.pardir, os.pardir, os.pardir)

    def export_sources(self):
        copy(self, "requests_engine.hpp", src=self._clone, dst=self.export_sources_folder)
        copy(self, "LICENSE", src=os.path.join(self._clone, "include", "requests_engine"),
             dst=self.export_sources_folder)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # HTTPS needs cpp-httplib built with OpenSSL (CPPHTTPLIB_OPENSSL_SUPPORT).
        self.requires("cpp-httplib/[>=0.11 <1]", options={"with_openssl": True})
        self.requires("openssl/[>=1.1 <4]")
        self.requires("nlohmann_json/[>=3.10 <4]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        if self.settings.compiler.get_safe("cppstd"):
            check_min_cppstd(self, 17)

    def build(self):
        pass

    def package(self):
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))
        copy(self, "requests_engine.hpp", src=self.source_folder,
             dst=os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "requests_engine")
        self.cpp_info.set_property("cmake_target_name", "requests_engine::requests_engine")
        self.cpp_info.set_property("pkg_config_name", "requests_engine")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.requires = ["cpp-httplib::cpp-httplib", "openssl::ssl", "openssl::crypto",
                                  "nlohmann_json::nlohmann_json"]
        if self.settings.os in ["Linux", "FreeBSD"]:
            self.cpp_info.system_libs = ["pthread"]
