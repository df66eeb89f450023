# Stand-in for ConanCenter's nlohmann_json: Debian's nlohmann-json3-dev, found by pkg-config.
from conan import ConanFile
from conan.tools.gnu import PkgConfig


class NlohmannJsonSystem(ConanFile):
    name = "nlohmann_json"
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"

    def package_id(self):
        self.info.clear()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "nlohmann_json")
        self.cpp_info.set_property("cmake_target_name", "nlohmann_json::nlohmann_json")
        PkgConfig(self, "nlohmann_json").fill_cpp_info(self.cpp_info, is_system=True)
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
